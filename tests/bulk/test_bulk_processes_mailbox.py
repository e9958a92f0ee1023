"""Real processes, a mailbox account: a server killed in the middle of a job sent over SMTP resumes after a restart
and sends nobody the message twice.

The mailbox is one of ``pec-mcp simulate``'s PEC provider (SMTP and IMAP on loopback, its own CA), configured as
a ``custom`` account of a sandbox server, so the provider and its counts outlive the server that is killed.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from pec_mcp.simulator.credentials import PECMAIL_ACCOUNTS
from tests.bulk.test_bulk_processes import (
    call,
    recipients,
    runner_pids,
    server_env,
    stats,
    until_sent,
)
from tests.processes import simulate_process

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "studio@pec.simulatore.test"
JOB = {"subject": "Sollecito {{n}}", "body": "Gentile cliente {{n}}, le ricordiamo il pagamento.", "account": "studio"}


@dataclass(frozen=True)
class Provider:
    origin: str
    imap_port: int
    smtp_port: int
    ca_file: str
    trust_file: str


@contextmanager
def simulate_with_mail() -> Iterator[Provider]:
    """``pec-mcp simulate`` with its PEC mail provider; where its HTTP, IMAP and SMTP servers listen."""
    with simulate_process("--delivery-delay", "1") as simulated:
        found = re.search(r"IMAP \(TLS\) (\d+), SMTP \(TLS\) (\d+),.*trust the test CA (\S+); "
                          r"trust.pec_providers = (\S+);", simulated.banner)
        assert found, simulated.banner
        yield Provider(simulated.origin, int(found.group(1)), int(found.group(2)), found.group(3), found.group(4))


def mailbox_config(folder: Path, provider: Provider) -> Path:
    config = folder / "config.toml"
    config.write_text(f"""
[accounts.studio]
address = "{ADDRESS}"
provider = "custom"
password = "{PECMAIL_ACCOUNTS[ADDRESS]}"
imap_host = "127.0.0.1"
imap_port = {provider.imap_port}
smtp_host = "127.0.0.1"
smtp_port = {provider.smtp_port}
security = "tls"
ca_file = "{provider.ca_file}"
requests_per_second = 20

[trust]
pec_providers = "{provider.trust_file}"
""")
    config.chmod(0o600)
    return config


@asynccontextmanager
async def serve(provider: Provider, store: Path, config: Path) -> Any:
    params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(ROOT),
                                   env=server_env(provider.origin, store, 20, config))
    async with Client(params) as client:
        yield client


async def test_a_server_killed_mid_job_on_a_mailbox_resumes_and_sends_every_recipient_exactly_once(
        tmp_path: Path) -> None:
    store = tmp_path / "shared.sqlite3"
    with simulate_with_mail() as provider:
        config = mailbox_config(tmp_path, provider)
        async with serve(provider, store, config) as client:
            started = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(40, "kill"),
                                                            "idempotency_key": "solleciti-studio"})
            with anyio.fail_after(30):
                while sum((await stats(provider.origin))["recipients"].values()) < 10:  # noqa: ASYNC110
                    await anyio.sleep(0.05)  # another process sends: this only looks
            [pid] = runner_pids(store)
            os.kill(pid, signal.SIGKILL)
        sent_before_restart = sum((await stats(provider.origin))["recipients"].values())
        assert sent_before_restart < 40

        async with serve(provider, store, config) as client:
            job = await until_sent(client, started["job_id"])
            again = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(40, "kill"),
                                                          "idempotency_key": "solleciti-studio"})
        final = await stats(provider.origin)
    counted = final["recipients"]
    assert started["account"] == "studio" and again["status"] == "duplicate"
    assert max(counted.values()) == 1, "somebody got the notice twice"
    counts = job["counts"]
    assert counts["queued"] == counts["sending"] == counts["failed"] == 0
    settled = counts["sent"] + counts["delivered"] + counts["not_delivered"]
    assert settled + counts["unknown"] == 40, (counts, job["first_errors"])
    assert settled <= len(counted) <= 40
    assert final["accepted"]["pecmail_submission"] == len(counted)
