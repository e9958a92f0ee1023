"""The command line: ``pec-mcp serve | simulate | demo | export | check-config``.

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
from datetime import date
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
    args.config = getattr(args, "config", None)
    _configure_logging(getattr(args, "log_level", "WARNING"))
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"pec-mcp: {_config_problem(exc, args.command)}", file=sys.stderr)
        return 2
    except PecError as exc:
        print(f"pec-mcp: {exc.explain()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away(1)
    return code


def _reader_went_away(code: int) -> int:
    """``pec-mcp check-config | head``: the reader closed the pipe; end quietly instead of with a traceback.

    Python would try to flush stdout once more at exit and print a second error; point it at /dev/null first.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return code


def _global_flags() -> argparse.ArgumentParser:
    # Added to the main parser and to every command, so that `pec-mcp --log-level DEBUG serve` and
    # `pec-mcp serve --log-level DEBUG` both work. SUPPRESS: a flag not given after the command must not
    # overwrite the one given before it.
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="PATH",
                       help="TOML config file (default: $PEC_MCP_CONFIG, then ~/.config/pec-mcp/config.toml)")
    flags.add_argument("--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       type=str.upper, help="log level on stderr (default WARNING)")
    return flags


def _parser() -> argparse.ArgumentParser:
    flags = _global_flags()
    parser = argparse.ArgumentParser(prog="pec-mcp", description="MCP server for Italian certified email (PEC).",
                                     parents=[flags])
    parser.add_argument("--version", action="version", version=f"pec-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)", parents=[flags])
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", help="HTTP host (default: http.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default: http.port, 8000; 0: a free one, printed)")
    serve.set_defaults(run=_serve)

    simulate = commands.add_parser("simulate", help="run the provider simulator on loopback", parents=[flags])
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8025, help="HTTP port (default 8025; 0: a free one, printed)")
    simulate.add_argument("--delivery-delay", type=float, default=2.0, help="seconds until CONSEGNA (default 2)")
    simulate.add_argument("--rate", type=float, default=1.0, help="PEC Massiva sends per second (default 1)")
    simulate.add_argument("--faults", default="", metavar="PLAN",
                          help="inject faults, e.g. 'pecmassiva:/send:drop-after:0.1,*:*:503-html:0.05,seed=7' "
                          "(rules provider:path:kind:chance[:option=value]; see pec_mcp/simulator/faults.py); "
                          "POST /__simulator__/faults changes the plan while running")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser("demo", help="offline end-to-end story through a real MCP client", parents=[flags])
    demo.set_defaults(run=_demo)

    export = commands.add_parser("export", parents=[flags],
                                 help="save the ledger as CSV/JSON, or the evidence pack of one sending")
    export.add_argument("--evidence", metavar="MESSAGE_ID", help="save the evidence ZIP of this sending instead")
    export.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day included (UTC)")
    export.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day included (UTC)")
    export.add_argument("--account", help="only this account (e.g. pecmassiva)")
    export.add_argument("--environment", choices=["offline", "sandbox", "production", "all"],
                        help="whose sendings (default: the configured environment)")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", "-o", type=Path, help="a new file to write (never overwritten); default: "
                        "standard output for CSV/JSON, ./pec-evidence-MESSAGE_ID.zip for --evidence")
    export.add_argument("--progress", action="store_true", help="draw a progress bar on stderr even when it is "
                        "not a terminal")
    export.set_defaults(run=_export)
    migrate = commands.add_parser("migrate", parents=[flags],
                                  help="create or upgrade the store's schema (SQLite or PostgreSQL)")
    migrate.set_defaults(run=_migrate)

    check = commands.add_parser("check-config", parents=[flags],
                                help="check the settings: what is missing or wrong, effective hosts, where each "
                                "setting came from (secrets masked)")
    check.add_argument("--probe", action="store_true",
                       help="also make one read-only call per configured provider to prove the credentials work")
    check.set_defaults(run=_check_config)
    return parser


def _config_problem(exc: ConfigError, command: str) -> str:
    """A configuration error as a person at a shell reads it: what to fix, and to run the command again.

    The error's own hint is kept when it names a fix; the generic one speaks of restarting a running server,
    which is not what the person who just ran a command needs.
    """
    from pec_mcp.config_wording import ENV_PREFIX

    if exc.hint != ConfigError.default_hint:
        text = exc.explain()
    else:
        again = "run this check again" if command == "check-config" else f"run `pec-mcp {command}` again"
        if f"in the {ENV_PREFIX}* environment" in exc.message:  # set by a variable, not by a file
            fix = f"Correct or unset each variable named above, then {again}."
        else:
            fix = f"Fix the setting named above, then {again}."
        text = f"{exc.message.rstrip('.')}. {fix}"
    # check-config itself is the place that checks everything: it does not send the user to itself.
    return text if command == "check-config" else f"{text} `pec-mcp check-config` checks every setting at once."


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


def _check_store(settings: Settings) -> None:
    """A store that cannot be used ends the command here, in one line, before any server starts."""
    from pec_mcp.store.file import check_store_path, prepare_store_file, store_file_warning

    check_store_path(settings.store.path)
    prepare_store_file(settings.store.path.expanduser())  # a folder that cannot be made fails here too
    readable = store_file_warning(settings.store.path)
    if readable:
        log.warning(readable)


def _serve(args: argparse.Namespace) -> int:
    # Start-up creates a few hundred thousand long-lived objects (mostly the SDK's pydantic models); the cyclic
    # collector would walk them over and over for nothing, about a fifth of the start-up time. Collect nothing
    # until the server is built, then freeze what exists so that later collections skip it.
    gc.disable()
    try:
        settings = _load(args.config)
        _check_store(settings)
        if args.transport == "http":
            from pec_mcp.server.http.app import serve_http

            # The HTTP app registers every tool as it is built: freeze only then, or each collection would walk
            # all of the SDK's models again (about a fifth of the CPU of a call under load).
            serve_http(settings, host=args.host or settings.http.host,
                       port=settings.http.port if args.port is None else args.port, built=_end_startup)
            return 0
        from pec_mcp.server import build_server
        from pec_mcp.server.catalogue import default_dir

        if settings.store.url is not None:
            from pec_mcp.server.http.app import preflight

            preflight(settings, replica=False)

        # A stdio server is spawned per window and per session: remember its tool list between starts.
        server = build_server(settings, catalogue_dir=default_dir(os.environ))
    finally:
        _end_startup()
    server.run()
    # The lifespan has closed by now; skip the interpreter's slow teardown of the SDK's modules.
    sys.stdout.flush()
    sys.stderr.flush()

    os._exit(0)


# A tool call allocates a few thousand short-lived objects, nearly all freed by reference counting: at the default
# of a young collection every 700 allocations, the collector ran several times a call for little. Every 7,000
# halves the collector's share of a call's CPU under load (about 5% before), for a few more young objects alive.
YOUNG_COLLECTION_EVERY = 7_000


def _end_startup() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
        gc.enable()


def _simulate(args: argparse.Namespace) -> int:
    import uvicorn

    from pec_mcp.listening import bound_port, listen
    from pec_mcp.simulator import create_simulator
    from pec_mcp.simulator.faults import FaultSpecError, QuietDrops

    try:
        sim = create_simulator(delivery_delay=args.delivery_delay, rate=args.rate, faults=args.faults)
    except FaultSpecError as exc:
        print(f"pec-mcp: --faults: {exc}", file=sys.stderr)
        return 2
    listening = listen(args.host, args.port, command="simulate")
    port = bound_port(listening)
    print(f"pec-mcp simulator on http://{args.host}:{port} (PEC Massiva at /pecmassiva, openapi.it PEC at "
          "/openapi-pec, Mensatek at /mensatek/v7, stats at /__simulator__/stats)", file=sys.stderr)
    pec_mail = _start_pec_mail(sim)
    if sim.faults.rules:
        print(f"faults: {json.dumps(sim.faults.describe()['rules'])}", file=sys.stderr)
    config = uvicorn.Config(sim.app, host=args.host, port=port, log_level="warning")
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())  # after Config, which sets up uvicorn's logging
    try:
        uvicorn.Server(config).run(sockets=[listening])
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


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-31") from None


def _export(args: argparse.Namespace) -> int:
    from pec_mcp.export_command import run_export

    return run_export(_load(args.config), args)
def _migrate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    from pec_mcp.store import Store, store_location

    opened = Store(store_location(settings.store))  # opening with upgrade (the default) migrates
    try:
        where = opened.backend.describe()
        before, after = opened.migrated
    finally:
        opened.close()
    if before == after:
        print(f"pec-mcp: the store at {where} is up to date (schema {after})", file=sys.stderr)
    else:
        print(f"pec-mcp: the store at {where} was upgraded from schema {before} to {after}", file=sys.stderr)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    """Print the report on stdout (JSON) and each finding as a line on stderr; non-zero when something is wrong."""
    settings = _load(args.config)
    from pec_mcp.checkup import Finding, check, report
    from pec_mcp.config import config_path, setting_sources
    from pec_mcp.sending import sender_problems

    problems = sender_problems(settings)  # the sender address the provider will accept
    findings = check(settings) + [Finding("error", "pecmassiva.sender", problem) for problem in problems]
    file = config_path(args.config, os.environ)
    shown = report(settings, config_file=str(file or "(none: defaults and environment only)"),
                   sources=setting_sources(args.config), findings=findings)
    if problems:
        shown["problems"] = problems
    failed = any(finding.level == "error" for finding in findings)
    lines = [finding.line() for finding in findings]
    if args.probe:
        import anyio

        from pec_mcp.server.probe import probe_all

        verdicts = anyio.run(probe_all, settings)
        shown["probe"] = {v.provider: v.line() for v in verdicts}
        lines += [f"probe: {v.line()}" for v in verdicts]
        failed = failed or any(not v.ok for v in verdicts)
    lines.append("the configuration has problems (see above)" if failed else
                 f"the configuration can work ({settings.env})")
    try:
        print(json.dumps(shown, indent=2, ensure_ascii=False), flush=True)
    except BrokenPipeError:
        return _reader_went_away(1 if failed else 0)
    for line in lines:
        print(f"pec-mcp: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
