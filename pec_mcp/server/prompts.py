"""Prompts: drafting a formal PEC, and checking and explaining a delivery."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

WHAT_PEC_PROVES = (
    "What a PEC proves: the ACCETTAZIONE receipt proves that it was sent and when; the CONSEGNA receipt proves that "
    "it was delivered to the recipient's PEC mailbox and when, with the same legal value as a registered letter with "
    "return receipt (DPR 68/2005). It does not prove that the recipient read it, nor, by itself, what the attachments "
    "mean. Sent to an ordinary (non-PEC) address it has no legal value. An AVVISO DI MANCATA CONSEGNA means the "
    "notification did not happen and must be redone."
)


def register(mcp: MCPServer[Any]) -> None:
    """Add the prompts to the server."""

    @mcp.prompt(title="Draft a PEC")
    def draft_pec(
        recipient: Annotated[str, Field(description="Who the PEC is for (name or PEC address)")],
        purpose: Annotated[str, Field(description="What the PEC must achieve, in a few words")],
        language: Annotated[Literal["it", "en"], Field(
            description="Language of the draft: 'it' (formal Italian, the default) or 'en' (formal English)")] = "it",
    ) -> str:
        """Draft a formal PEC for the user to review before anything is sent."""
        tongue = "formal Italian" if language == "it" else "formal English"
        return (
            f"Draft a PEC (Italian certified email) in {tongue} to {recipient}. Purpose: {purpose}.\n"
            "Write a precise subject line (it appears in every receipt), an opening with the sender's full "
            "identification, the facts and the request with any deadline, the list of attachments if any, and a "
            "formal closing. Keep it factual: a PEC is legal evidence.\n"
            f"{WHAT_PEC_PROVES}\n"
            "Show the draft to the user and wait. Do not send it: when the user approves, call send_pec with "
            "dry_run=true to show the cost, then send it only after the user's explicit yes, with an "
            "idempotency_key."
        )

    @mcp.prompt(title="Check a PEC delivery")
    def check_delivery(
        message_id: Annotated[str, Field(description="The sending code (message_id) of the PEC")],
    ) -> str:
        """Look up the receipts of a sending and explain what they mean legally."""
        return (
            f"Call get_pec_receipts with message_id {message_id!r}. Then tell the user, in plain words: who has "
            "legally received it (CONSEGNA receipt, with the date and time), who has not and why, and who is still "
            "pending. If nothing is delivered yet, say when to check again; non-delivery is final only after an "
            "AVVISO DI MANCATA CONSEGNA or 24 hours without a receipt.\n"
            f"{WHAT_PEC_PROVES}"
        )
