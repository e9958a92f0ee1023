"""Tool models for PEC accounts: what list_pec_accounts answers, and what an IMAP message adds when read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pec_mcp.server.pec.models import ENV_FIELD, Environment


class AccountInfo(BaseModel):
    name: str = Field(description="Pass it as account= to the PEC tools")
    address: str | None = Field(description="The PEC address of the account")
    kind: Literal["pecmassiva", "imap"] = Field(description="pecmassiva: the PEC Massiva API; imap: a PEC "
                                                "mailbox reached over IMAP and SMTP")
    provider: str = Field(description="The PEC provider (or preset) serving it; 'simulator' offline")
    environment: Environment = ENV_FIELD
    can_send: bool
    can_read: bool
    default: bool = Field(description="Whether tools use this account when none is named")
    note: str = Field(description="What is missing, or where the account is served from")


class AccountsResult(BaseModel):
    accounts: list[AccountInfo]
    default_account: str | None = Field(description="The account used when none is named; None when several are "
                                        "configured and none is the default (then name one)")
