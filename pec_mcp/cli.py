"""The command line: ``pec-mcp serve | simulate | demo | check-config``.

Imports are done inside each command, so that starting one command pays only for what it uses.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pec_mcp import __version__
from pec_mcp.errors import ConfigError, PecError

if TYPE_CHECKING:
    from pec_mcp.config import Settings
    from pec_mcp.simulator import Simulator
    from pec_mcp.simulator.pecmail.servers import PecMailServers

log = logging.getLogger("pec_mcp")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"pec-mcp: {exc.explain()}", file=sys.stderr)
        return 2
    except PecError as exc:
        print(f"pec-mcp: {exc.explain()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pec-mcp", description="MCP server for Italian certified email (PEC).")
    parser.add_argument("--version", action="version", version=f"pec-mcp {__version__}")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level on stderr (default WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--config", type=Path, help="TOML config file (default: $PEC_MCP_CONFIG, then "
                       "~/.config/pec-mcp/config.toml)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", help="HTTP host (default: http.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default: http.port, 8000)")
    serve.set_defaults(run=_serve)

    simulate = commands.add_parser("simulate", help="run the provider simulator on loopback")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8025)
    simulate.add_argument("--delivery-delay", type=float, default=2.0, help="seconds until CONSEGNA (default 2)")
    simulate.add_argument("--rate", type=float, default=1.0, help="PEC Massiva sends per second (default 1)")
    simulate.add_argument("--faults", default="", metavar="PLAN",
                          help="inject faults, e.g. 'pecmassiva:/send:drop-after:0.1,*:*:503-html:0.05,seed=7' "
                          "(rules provider:path:kind:chance[:option=value]; see pec_mcp/simulator/faults.py); "
                          "POST /__simulator__/faults changes the plan while running")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser("demo", help="offline end-to-end story through a real MCP client")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check-config", help="print the effective settings, secrets masked")
    check.add_argument("--config", type=Path)
    check.set_defaults(run=_check_config)
    return parser


def _configure_logging(level: str) -> None:
    # stderr only: stdout carries the stdio protocol. MCPServer's own basicConfig is a no-op after this.
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _load(config: Path | None) -> Settings:
    from pec_mcp.config import config_file_warning, config_path, environment_warnings, load_settings
    from pec_mcp.redaction import Redactor, install_log_redaction

    for problem in environment_warnings(os.environ):  # before loading: a refused setting may explain the error
        log.warning(problem)
    settings = load_settings(config)
    install_log_redaction(Redactor(settings.secret_values()))
    readable = config_file_warning(config_path(config, os.environ))
    if readable:
        log.warning(readable)
    return settings


def _serve(args: argparse.Namespace) -> int:
    # Start-up creates a few hundred thousand long-lived objects (mostly the SDK's pydantic models); the cyclic
    # collector would walk them over and over for nothing, about a fifth of the start-up time. Collect nothing
    # until the server is built, then freeze what exists so that later collections skip it.
    gc.disable()
    try:
        settings = _load(args.config)
        if args.transport == "http":
            from pec_mcp.server.http_app import serve_http

            _end_startup()
            serve_http(settings, host=args.host or settings.http.host, port=args.port or settings.http.port)
            return 0
        from pec_mcp.server import build_server
        from pec_mcp.server.catalogue import default_dir

        # A stdio server is spawned per window and per session: remember its tool list between starts.
        server = build_server(settings, catalogue_dir=default_dir(os.environ))
    finally:
        _end_startup()
    server.run()
    # The lifespan has closed by now; skip the interpreter's slow teardown of the SDK's modules.
    sys.stdout.flush()
    sys.stderr.flush()

    os._exit(0)


def _end_startup() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _simulate(args: argparse.Namespace) -> int:
    import uvicorn

    from pec_mcp.simulator import create_simulator
    from pec_mcp.simulator.faults import FaultSpecError, QuietDrops

    try:
        sim = create_simulator(delivery_delay=args.delivery_delay, rate=args.rate, faults=args.faults)
    except FaultSpecError as exc:
        print(f"pec-mcp: --faults: {exc}", file=sys.stderr)
        return 2
    print(f"pec-mcp simulator on http://{args.host}:{args.port} (PEC Massiva at /pecmassiva, openapi.it PEC at "
          "/openapi-pec, Mensatek at /mensatek/v7, stats at /__simulator__/stats)", file=sys.stderr)
    pec_mail = _start_pec_mail(sim)
    if sim.faults.rules:
        print(f"faults: {json.dumps(sim.faults.describe()['rules'])}", file=sys.stderr)
    config = uvicorn.Config(sim.app, host=args.host, port=args.port, log_level="warning")
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())  # after Config, which sets up uvicorn's logging
    try:
        uvicorn.Server(config).run()
    finally:
        pec_mail.close()
    return 0


def _start_pec_mail(sim: Simulator) -> PecMailServers:
    """The PEC provider over SMTP and IMAP, on the HTTP simulator's clock and counters; its addresses on stderr."""
    from pec_mcp.simulator.pecmail.servers import PecMailOptions, start_pec_mail_provider

    servers = start_pec_mail_provider(PecMailOptions(delivery_delay=sim.options.delivery_delay), clock=sim.clock,
                                      stats=sim.stats)
    found = servers.endpoints
    accounts = ", ".join(f"{a.address} / {a.password}" for a in found.accounts)
    print(f"PEC mail provider on {found.host}: IMAP (TLS) {found.imap_port}, SMTP (TLS) {found.smtp_port}, "
          f"SMTP (STARTTLS) {found.smtp_starttls_port}; trust the test CA {found.ca_file}; "
          f"trust.pec_providers = {found.trust_file}; simulator accounts: {accounts}", file=sys.stderr)
    return servers


def _demo(args: argparse.Namespace) -> int:
    import anyio

    from pec_mcp.demo import run_demo

    return anyio.run(run_demo)


def _check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    from pec_mcp.config import config_path
    from pec_mcp.sending import sender_problems

    problems = sender_problems(settings)
    report = {"config_file": str(config_path(args.config, os.environ) or "(none: defaults and environment only)"),
              "effective_environment": settings.env, **settings.masked()}
    if problems:
        report["problems"] = problems
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
