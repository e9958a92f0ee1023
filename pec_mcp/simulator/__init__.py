"""A faithful fake of PEC Massiva, openapi.it PEC and Mensatek, as one ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pec_mcp.simulator.app import Simulator, SimulatorOptions, create_simulator

__all__ = ["Simulator", "SimulatorOptions", "create_simulator"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``pec_mcp.simulator.credentials`` does not load the whole simulator.
    if name in __all__:
        from pec_mcp.simulator import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
