"""The job runner: each request once, paced, resumable after a crash, cancellable, and followed to delivery."""

from __future__ import annotations

import pytest

from pec_mcp.jobs import NO_RECEIPT_REASON, RecipientRow, job_uri, ledger_key
from pec_mcp.simulator.faults import FaultPlan, Reply, respond, rule
from tests.bulk.conftest import Bench, personalised

pytestmark = pytest.mark.anyio


async def test_a_job_sends_every_recipient_once_then_follows_the_receipts_to_their_outcome(bench: Bench) -> None:
    recipients = [*personalised(4), RecipientRow(5, "fail-nessuno@pec.example.it", {"n": "x"})]
    job_id = bench.start(recipients)
    assert await bench.send_all() == 5
    assert set(bench.sent_to().values()) == {1} and len(bench.sent_to()) == 5
    assert set(bench.states(job_id).values()) == {"sent"}

    bench.clock.advance(31)  # past the delivery delay and the follow-up interval
    assert await bench.runner.follow_due() == 5
    progress = bench.jobs.progress(job_id)
    assert progress is not None
    assert progress.counts["delivered"] == 4 and progress.counts["not_delivered"] == 1
    assert progress.status == "finished"
    [failed] = bench.jobs.recipients(job_id, states=("not_delivered",))
    assert failed.address == "fail-nessuno@pec.example.it" and "utente inesistente" in (failed.reason or "")
    assert await bench.runner.follow_due() == 0  # nothing left to read


async def test_receipts_are_not_read_again_before_the_interval(bench: Bench) -> None:
    bench.start(personalised(2))
    await bench.send_all()
    bench.clock.advance(10)
    assert await bench.runner.follow_due() == 0


async def test_identical_messages_go_out_as_one_request_per_fifty_recipients(bench: Bench) -> None:
    job_id = bench.start(personalised(60), subject="Avviso", body="Uguale per tutti")
    assert await bench.send_all() == 2
    assert bench.simulator.stats.accepted["pecmassiva_send"] == 2
    assert set(bench.states(job_id).values()) == {"sent"}


async def test_cancel_stops_what_is_not_yet_sent(bench: Bench) -> None:
    job_id = bench.start(personalised(5))
    assert await bench.runner.send_next() and await bench.runner.send_next()
    assert bench.jobs.cancel(job_id) == 3
    assert await bench.send_all() == 0
    assert len(bench.sent_to()) == 2
    progress = bench.jobs.progress(job_id)
    assert progress is not None and progress.counts["cancelled"] == 3 and progress.counts["sent"] == 2


async def test_a_request_waiting_for_its_turn_when_the_job_is_cancelled_is_not_sent(bench: Bench) -> None:
    job_id = bench.start(personalised(1))

    async def cancel_meanwhile() -> None:
        bench.jobs.cancel(job_id)

    bench.pacer.hook = cancel_meanwhile
    await bench.send_all()
    assert bench.sent_to() == {}
    assert set(bench.states(job_id).values()) == {"cancelled"}


async def test_a_429_is_retried_after_retry_after_and_sends_once(bench: Bench) -> None:
    bench.simulator.faults = FaultPlan([rule("429", "pecmassiva", "/send", method="POST", times=1, retry_after=2)])
    job_id = bench.start(personalised(1))
    started = bench.clock.now()
    await bench.send_all()
    assert bench.simulator.stats.faults["pecmassiva:429"] == 1
    assert bench.sent_to() == {"cliente0@pec.example.it": 1}
    assert bench.states(job_id) == {"cliente0@pec.example.it": "sent"}
    assert bench.clock.now() - started >= 2  # the virtual clock: the runner waited as Retry-After asked


async def test_other_failures_mark_the_request_failed_with_the_reason(bench: Bench) -> None:
    refusal = Reply.json({"success": False, "message": "Post parameter is not valid"}, 400)
    bench.simulator.faults = FaultPlan([respond(refusal, "pecmassiva")])
    job_id = bench.start(personalised(2))
    await bench.send_all()
    [first, _] = bench.jobs.recipients(job_id)
    assert first.state == "failed" and "Post parameter is not valid" in (first.reason or "")


async def test_a_lost_answer_makes_the_recipients_unknown_and_they_are_never_resent(bench: Bench) -> None:
    bench.simulator.faults = FaultPlan([rule("drop", "pecmassiva", "/send", method="POST")])
    job_id = bench.start(personalised(2))
    await bench.send_all()
    bench.simulator.faults = FaultPlan()
    bench.runner.recover()
    assert await bench.send_all() == 0
    assert set(bench.states(job_id).values()) == {"unknown"}
    progress = bench.jobs.progress(job_id)
    assert progress is not None and progress.status == "finished"


async def test_after_a_crash_requests_that_never_left_are_sent_and_those_on_the_wire_become_unknown(
    bench: Bench,
) -> None:
    job_id = bench.start(personalised(3))
    # A server that died: it took request 1 and put it on the wire, and took request 2 but never sent it.
    on_wire = bench.jobs.claim_next("dead-server", "offline", "pecmassiva")
    never_left = bench.jobs.claim_next("dead-server", "offline", "pecmassiva")
    assert on_wire is not None and never_left is not None
    row, _ = bench.store.begin_send(provider="pecmassiva", environment="offline", sender=None,
                                    idempotency_key=ledger_key(job_id, on_wire.seq), recipients=on_wire.addresses,
                                    subject="Avviso 0", job_id=job_id)
    bench.store.mark_dispatching(row.id)
    bench.store.begin_send(provider="pecmassiva", environment="offline", sender=None,
                           idempotency_key=ledger_key(job_id, never_left.seq), recipients=never_left.addresses,
                           subject="Avviso 1", job_id=job_id)

    assert bench.runner.recover() == 2
    assert await bench.send_all() == 2
    assert bench.states(job_id) == {"cliente0@pec.example.it": "unknown", "cliente1@pec.example.it": "sent",
                                    "cliente2@pec.example.it": "sent"}
    assert bench.sent_to() == {"cliente1@pec.example.it": 1, "cliente2@pec.example.it": 1}


async def test_requests_held_by_a_live_runner_are_left_alone(bench: Bench) -> None:
    bench.start(personalised(1))
    bench.jobs.heartbeat("other-live-server")  # this process: alive
    assert bench.jobs.claim_next("other-live-server", "offline", "pecmassiva") is not None
    assert bench.runner.recover() == 0
    assert bench.jobs.orphaned("me", lease=60) == []
    # A runner that stopped beating long ago is gone even if its process number is alive.
    bench.clock.advance(120)
    assert bench.jobs.orphaned("me", lease=60) != []


async def test_a_recipient_without_any_receipt_for_24_hours_is_not_delivered(bench: Bench) -> None:
    no_receipts = Reply.json({"success": False, "message": "Result empty"}, 404)
    job_id = bench.start(personalised(1))
    await bench.send_all()
    bench.simulator.faults = FaultPlan([respond(no_receipts, "pecmassiva", "/send/*", method="GET")])
    bench.clock.advance(23 * 3600)
    await bench.runner.follow_due()
    assert bench.states(job_id) == {"cliente0@pec.example.it": "sent"}
    bench.clock.advance(3600)
    await bench.runner.follow_due()
    [row] = bench.jobs.recipients(job_id)
    assert (row.state, row.reason) == ("not_delivered", NO_RECEIPT_REASON)


async def test_subscribers_hear_of_a_change_at_most_once_a_second_and_always_of_the_last(bench: Bench) -> None:
    job_id = bench.start(personalised(3))
    await bench.send_all()  # three requests within a few virtual milliseconds
    assert bench.published == [job_uri(job_id)]
    await bench.runner.notifier.flush()
    assert bench.published == [job_uri(job_id)]
    bench.clock.advance(1)
    await bench.runner.notifier.flush()
    assert bench.published == [job_uri(job_id)] * 2
