"""The dashboard at ``/dashboard`` on the HTTP transport: sendings, receipts, bulk jobs, costs and the audit trail.

Plain server-rendered HTML (Jinja2 templates, autoescaped) with one small script for live job progress and one
stylesheet, all served by pec-mcp itself: nothing is fetched from elsewhere, so it works offline.
"""

from pec_mcp.dashboard.pages import Dashboard, dashboard_routes

__all__ = ["Dashboard", "dashboard_routes"]
