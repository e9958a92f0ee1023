"""The MCP App views in a minimal host page: an iframe and JSON-RPC over postMessage, as the Apps extension says.

The host page is a test double of an Apps host (Claude, VS Code, ...), nothing more: it answers ``ui/initialize``,
sends ``ui/notifications/tool-input`` and ``ui/notifications/tool-result`` with a real tool result from the running
server, and forwards the view's ``tools/call`` requests to that server. Its policy forbids every network request,
as hosts do, and the page records any request made at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pec_mcp.server.views import BULK_JOB_VIEW, RECEIPTS_VIEW
from tests.browser.conftest import DOCS, PLANTED, SCREENSHOTS, Served, serious_violations

pytestmark = pytest.mark.slow

HOST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test host</title>
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-src 'self' about:">
</head><body>
<iframe id="view" title="MCP App view" sandbox="allow-scripts" style="width:100%;height:640px;border:0"></iframe>
<script>
"use strict";
const frame = document.getElementById("view");
window.hostLog = [];
let toolInput = null, toolResult = null;
function post(message) { frame.contentWindow.postMessage(message, "*"); }
window.startView = (html, input, result) => { toolInput = input; toolResult = result; frame.srcdoc = html; };
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) { return; }
  const m = event.data;
  window.hostLog.push(m.method || "response");
  if (m.method === "ui/initialize") {
    post({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: "2026-01-26",
      hostInfo: { name: "test host", version: "1" }, hostCapabilities: { serverTools: {} },
      hostContext: { theme: "light", displayMode: "inline" } } });
  } else if (m.method === "ui/notifications/initialized") {
    post({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: { arguments: toolInput } });
    post({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: toolResult });
  } else if (m.method === "tools/call") {
    const result = await window.pecCallTool(m.params.name, m.params.arguments);
    post({ jsonrpc: "2.0", id: m.id, result: result });
  } else if (m.id !== undefined && m.method) {
    post({ jsonrpc: "2.0", id: m.id, result: {} });
  }
});
</script></body></html>"""


@pytest.fixture
def host(browser: Any, served: Served) -> Iterator[tuple[Any, list[str]]]:
    context = browser.new_context(viewport={"width": 720, "height": 760})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.expose_function("pecCallTool", lambda name, arguments: served.call_tool(name, arguments))
    page.set_content(HOST)
    yield page, requests
    context.close()


def show(page: Any, served: Served, uri: str, tool: str, arguments: dict[str, Any]) -> Any:
    html = served.read_resource(uri)
    result = served.call_tool(tool, arguments)
    page.evaluate("([html, input, result]) => window.startView(html, input, result)",
                  [html, arguments, result])
    return page.frame_locator("#view")


def test_the_receipts_view_draws_the_timeline_of_a_real_result(host: tuple[Any, list[str]], served: Served) -> None:
    page, requests = host
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    view = show(page, served, RECEIPTS_VIEW, "get_pec_receipts", {"message_id": served.message_ids["two"]})
    view.get_by_role("heading", name=f"PEC {served.message_ids['two']}").wait_for()
    text = view.locator("main").inner_text()
    assert "luca@pec.example.it" in text and "giulia@pec.other.it" in text
    assert "ACCETTAZIONE" in text and "CONSEGNA" in text and "legal proof of delivery" in text
    failed = show(page, served, RECEIPTS_VIEW, "get_pec_receipts", {"message_id": served.message_ids["failed"]})
    failed.get_by_role("heading", name=f"PEC {served.message_ids['failed']}").wait_for()
    assert "AVVISO DI MANCATA CONSEGNA" in failed.locator("main").inner_text()
    log = page.evaluate("window.hostLog")
    assert log[:2] == ["ui/initialize", "ui/notifications/initialized"] and "ui/notifications/size-changed" in log
    assert requests == [] and dialogs == []  # the view asked nothing of the network and ran nothing planted


def test_the_job_view_follows_a_running_job_through_the_host(host: tuple[Any, list[str]], served: Served) -> None:
    page, requests = host
    job_id = served.start_job("browser-view", count=12)
    view = show(page, served, BULK_JOB_VIEW, "get_bulk_pec", {"job_id": job_id})
    bar = view.locator("progress")
    bar.wait_for()
    first = int(bar.get_attribute("value") or "0")
    assert first < 12
    # The view polls get_bulk_pec through the host's tools/call until the job is done.
    view.locator("progress[value='12']").wait_for(timeout=60_000)
    assert "tools/call" in page.evaluate("window.hostLog")
    assert requests == []


def test_views_have_no_serious_accessibility_violation(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.set_content("<!doctype html><title>view</title>")
    for uri, tool, arguments in ((RECEIPTS_VIEW, "get_pec_receipts", {"message_id": served.message_ids["failed"]}),
                                 (BULK_JOB_VIEW, "get_bulk_pec", {"job_id": served.start_job("browser-axe-view", 2)})):
        # The view's document on its own, fed the way its bridge is fed (axe runs in the document it checks).
        page.set_content(served.read_resource(uri))
        page.evaluate("(result) => window.postMessage({jsonrpc: '2.0', method: 'ui/notifications/tool-result', "
                      "params: result}, '*')", served.call_tool(tool, arguments))
        page.wait_for_selector("h1")
        assert serious_violations(page) == [], uri
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, uri
    context.close()


def test_planted_html_in_a_result_is_shown_as_text(host: tuple[Any, list[str]], served: Served) -> None:
    page, _ = host
    result = served.call_tool("get_pec_receipts", {"message_id": served.message_ids["failed"]})
    result["structuredContent"]["summary"] = PLANTED
    result["structuredContent"]["recipients"][0]["reason"] = PLANTED
    page.evaluate("([html, result]) => window.startView(html, {}, result)",
                  [served.read_resource(RECEIPTS_VIEW), json.loads(json.dumps(result))])
    view = page.frame_locator("#view")
    view.locator(".summary").wait_for()
    assert view.locator(".summary").inner_text() == PLANTED
    assert view.locator("script").count() == 2  # the bridge and the view's own: nothing planted became a script


def test_screenshot_of_the_receipts_view(host: tuple[Any, list[str]], served: Served) -> None:
    if not SCREENSHOTS:
        pytest.skip("set PEC_MCP_UPDATE_SCREENSHOTS=1 to write docs/*.png")
    page, _ = host
    view = show(page, served, RECEIPTS_VIEW, "get_pec_receipts", {"message_id": served.message_ids["two"]})
    view.locator("h1").wait_for()
    page.locator("#view").screenshot(path=str(DOCS / "view-receipts.png"))
