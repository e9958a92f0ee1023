"""Export tools of the ``pec`` toolset: the ledger as CSV or JSON, and the evidence pack of one sending."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from pec_mcp.errors import InputError, PecError
from pec_mcp.paths import allowed_target
from pec_mcp.server.annotations import LOCAL_READ, READ
from pec_mcp.server.errors import tool_errors
from pec_mcp.server.gate import state_of
from pec_mcp.server.pec.models import ENV_FIELD, Environment
from pec_mcp.server.state import AppState, StateHolder

if TYPE_CHECKING:
    from pec_mcp.records import Records

SaveTo = Annotated[str, Field(min_length=1, max_length=4096, description="Where to save: a full path of a new file, or "
                              "of a folder (a file name is chosen), inside attachments.allowed_dirs; never overwrites")]


class ExportResult(BaseModel):
    path: str = Field(description="The file written")
    format: Literal["csv", "json"]
    rows: int = Field(description="One row per recipient of each sending")
    size_bytes: int
    since: str | None
    until: str | None
    account: str | None
    environment: Literal["offline", "sandbox", "production", "all"] = Field(
        description="Whose sendings were exported: offline (simulator), sandbox, production, or all of them")
    note: str


class EvidenceResult(BaseModel):
    path: str = Field(description="The ZIP written")
    size_bytes: int
    message_id: str
    files: list[str] = Field(description="The files inside the ZIP")
    receipts: int = Field(description="Receipts kept in the ledger for this sending")
    signed_originals: int = Field(description="Receipts included as the original signed .eml received (IMAP "
                                  "accounts); the others are the provider's receipt texts")
    environment: Environment = ENV_FIELD
    note: str


def _records(app: AppState) -> Records:
    # The exports' modules are loaded at the first export, not when the toolset is registered at start-up.
    from pec_mcp.records import Records

    return Records(app.store, price_per_message_eur=app.settings.sending.price_per_message_eur)


def register(mcp: MCPServer[Any], holder: StateHolder) -> None:
    """Add the export tools (part of the ``pec`` toolset)."""

    @mcp.tool(title="Export PEC sendings to a file", annotations=LOCAL_READ)
    async def export_pec_sendings(
        ctx: Context[Any],
        save_to: SaveTo,
        since: Annotated[date | None, Field(description="First day included (YYYY-MM-DD, UTC)")] = None,
        until: Annotated[date | None, Field(description="Last day included (YYYY-MM-DD, UTC)")] = None,
        account: Annotated[str | None, Field(max_length=100, description="Only this account (e.g. 'pecmassiva'); "
                                             "all accounts when left out")] = None,
        format: Annotated[Literal["csv", "json"], Field(description="csv (opens in a spreadsheet) or json")] = "csv",
        environment: Annotated[Literal["offline", "sandbox", "production", "all"] | None, Field(
            description="The environment whose sendings to export ('all': every one); the server's own when left "
            "out")] = None,
    ) -> ExportResult:
        """Save the local ledger of sendings as a CSV or JSON file, one row per recipient: subject, account,
        environment, the date of each receipt (accepted, delivered or failed), outcome, cost at the list price and
        who sent it. Reads only the local store (nothing is sent); large ledgers are written as a stream. Use it
        when the user wants a report or a spreadsheet of what was sent."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if since and until and since > until:
                raise InputError(f"since ({since}) is after until ({until})", hint="Give since <= until.")
            name = f"pec-sendings-{datetime.now(UTC):%Y%m%d-%H%M%S}.{format}"
            target = allowed_target(save_to, app.settings.attachments.resolved_dirs(), default_name=name)
            env = environment or app.environment
            from pec_mcp.exports import export_sendings_to
            from pec_mcp.records import SendingFilter

            flt = SendingFilter(account=account, environment=None if env == "all" else env, since=since, until=until)
            done = await anyio.to_thread.run_sync(
                lambda: export_sendings_to(_records(app), flt, format, target, progress=_reporter(ctx)))
            return ExportResult(path=str(done.path), format=format, rows=done.rows, size_bytes=done.bytes,
                                since=since.isoformat() if since else None, until=until.isoformat() if until else None,
                                account=account, environment=env,
                                note=f"{done.rows} row(s) written." if done.rows else
                                "No sending matched: the file holds only the header.")

    @mcp.tool(title="Save the evidence pack of a PEC sending", annotations=READ)
    async def export_pec_evidence(
        ctx: Context[Any],
        message_id: Annotated[str, Field(min_length=1, max_length=64, description="The sending code (message_id) "
                                         "from send_pec or find_pec_sendings")],
        save_to: SaveTo,
    ) -> EvidenceResult:
        """Save everything that proves one PEC sending as a ZIP to hand to a lawyer or a court: the receipts as
        received (the original signed .eml files for IMAP accounts, the provider's receipt texts for PEC Massiva),
        their signature verification, the ledger and audit entries, a one-page HTML summary, and SHA-256 sums.
        The latest receipts are fetched first when the provider can be reached (a read; nothing is sent)."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            name = f"pec-evidence-{_safe(message_id)}.zip"
            target = allowed_target(save_to, app.settings.attachments.resolved_dirs(), default_name=name)
            refreshed = await _refresh(app, message_id)
            from pec_mcp.exports import evidence_pack

            pack = await anyio.to_thread.run_sync(
                lambda: evidence_pack(_records(app), message_id, target, environment=app.environment))
            note = "Receipts were read again from the provider first. " if refreshed else (
                "The provider could not be reached: the pack holds the receipts kept in the ledger. ")
            return EvidenceResult(path=str(pack.path), size_bytes=pack.bytes, message_id=message_id, files=pack.files,
                                  receipts=pack.receipts, signed_originals=pack.originals,
                                  environment=pack.sending.environment,
                                  note=f"{note}Open summary.html for a one-page account; only CONSEGNA proves "
                                  "delivery.")


async def _refresh(app: AppState, message_id: str) -> bool:
    """Read the sending's receipts once more, so that the ledger holds the latest; a failure is not fatal."""
    sending = app.store.sending_by_message_id(message_id)
    if sending is None or sending.provider != "pecmassiva":
        return False
    try:
        await app.pec().status(message_id)
    except PecError:
        return False
    return True


def _reporter(ctx: Context[Any]) -> Any:
    """Progress of a long export for clients that asked for it (called from the export's worker thread)."""

    def report(done: int, total: int) -> None:
        anyio.from_thread.run(lambda: ctx.report_progress(done, total, f"{done:,} of {total:,} rows"))

    return report


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:64]
