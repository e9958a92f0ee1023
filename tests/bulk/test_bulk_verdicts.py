"""The job tables on both stores: a recipient still waiting keeps the reason a receipt was not counted, and each
recipient shows the best signature verdict among the receipts the ledger keeps for its request."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pec_mcp.accounts import OFFLINE_ACCOUNT, resolve_account
from pec_mcp.config import Settings
from pec_mcp.jobs import JobStore, RecipientRow, plan_bulk
from pec_mcp.store import Receipt, Store

ONE, TWO = "uno@pec.esempio.it", "due@pec.esempio.it"


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    handle = Store(store_location)
    yield handle
    handle.close()


def consegna(recipient: str, signature: str, text: str) -> Receipt:
    return Receipt(kind="delivered", date="02/03/2026 10:15:00 +0100", provider_text=f"CONSEGNA: {text}",
                   source="imap", recipient=recipient, signature=signature)


def test_a_forged_consegna_leaves_its_recipient_waiting_with_the_reason_and_the_verdicts_pick_the_best(
        make_settings: Callable[..., Settings], store: Store) -> None:
    settings = make_settings()
    plan = plan_bulk(recipients=[RecipientRow(1, ONE, {}), RecipientRow(2, TWO, {})], subject="Avviso",
                     body="Testo uguale", attachments=[], settings=settings,
                     account=resolve_account(settings, OFFLINE_ACCOUNT))
    jobs = JobStore(store)
    job, _ = jobs.create(plan, idempotency_key=None, attachment_paths=[])
    claim = jobs.claim_next("runner", "offline", OFFLINE_ACCOUNT)
    assert claim is not None and claim.addresses == [ONE, TWO]  # one message for both
    jobs.finish(job.id, claim.seq, "sent", message_id="m-1@studio", next_check_at=0.0)
    store.record_receipts(environment="offline", account=OFFLINE_ACCOUNT, message_id="m-1@studio", sending_id=None,
                          receipts=[consegna(ONE, "valid_untrusted", "a"), consegna(ONE, "valid", "b"),
                                    consegna(TWO, "invalid", "c")])
    outcomes: dict[str, tuple[str, str | None]] = {ONE: ("delivered", None), TWO: ("sent", "forged: not counted")}
    later = store.clock() + 60
    first = jobs.record_delivery(job.id, claim.seq, outcomes, next_check_at=later)
    again = jobs.record_delivery(job.id, claim.seq, outcomes, next_check_at=later + 1)
    states = {r.address: (r.state, r.reason) for r in jobs.recipients(job.id)}
    assert (first, again) == (True, False)  # the same outcome twice is no change to tell subscribers about
    assert states == {ONE: ("delivered", None), TWO: ("sent", "forged: not counted")}
    assert jobs.receipt_verdicts(job.id) == {ONE: "valid", TWO: "invalid"}
    assert jobs.due_followups("offline", OFFLINE_ACCOUNT, limit=5) == []  # still followed, at its next check
    assert jobs.next_followup_at("offline", OFFLINE_ACCOUNT) == later + 1
    assert job.account == OFFLINE_ACCOUNT and plan.cost_eur == 0.0
