"""`pec-mcp demo` end to end: every chapter works and each outcome it prints is a true one."""

from __future__ import annotations

import re

import pytest

from pec_mcp.demo import run_demo

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_the_demo_shows_true_mensatek_outcomes_and_no_refused_send(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    code = await run_demo()
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:]
    reports = re.findall(r"webhook report (\d+) \((\w+)\): (\S+)", out.out)
    outcomes = {(recipient, status) for _, status, recipient in reports}
    assert ("ana.garcia@example.es", "delivered") in outcomes
    assert ("read-luis.martin@example.es", "read") in outcomes
    assert ("fail-marta.ruiz@example.es", "not_delivered") in outcomes
    assert all(status != "unknown" for _, status, _ in reports), reports
    # The demo's bulk job runs at the simulator's own rate: the pacing never lets the provider refuse a send.
    assert not [r for r in caplog.records if "429" in r.getMessage()]
    # The mailbox chapter: receipts verified, the forged CONSEGNA refused and not counted.
    assert "signature valid" in out.out and "forged-controparte@pec-altro.it stays pending" in out.out
    # The mailbox's bulk job: sent over SMTP, every recipient settled by a receipt with a valid signature.
    assert "from simulata: 3 SMTP submissions" in out.out
    assert "fail-vecchio.indirizzo@pec-clienti.it: not_delivered, receipt signature valid" in out.out
