"""A faithful fake of PEC Massiva, openapi.it PEC and Mensatek, as one ASGI app."""

from pec_mcp.simulator.app import Simulator, SimulatorOptions, create_simulator

__all__ = ["Simulator", "SimulatorOptions", "create_simulator"]
