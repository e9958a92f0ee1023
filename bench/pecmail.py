"""PEC mail: receipts verified per second on one core, and peak memory sending a 25 MB attachment over SMTP.

Signatures: receipts signed as the simulator's provider signs them (RSA-2048, SHA-256, chain to the test CA) are
verified one after another in this process, against a trust list: ``verify_message`` alone, and the whole
``parse_pec_message`` (MIME, daticert.xml, signature, cross-check). The rate is per second of this process's CPU
time, so it is the throughput of one core even on a busy machine.

Memory: each measurement runs in a fresh child process (``python bench/pecmail.py child MODE ...``) that submits a
25 MB attachment to the PEC mail provider of ``pec-mcp simulate`` (a separate process) over SMTP with TLS. The
resident-set high-water mark is reset once everything is warm; the peak over the resident size before the send is
reported. pec-mcp submits with its own SMTP client (``pec_mcp.pecmail.smtp``, what ``send_pec`` uses on a mailbox
account), which writes ``OutgoingMessage.chunks(smtp_data=True)`` straight into the DATA phase; the baseline is the
simple way, ``smtplib.sendmail`` with the whole message as bytes.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import (
    PYTHON,
    ROOT,
    child_peak,
    env,
    free_port,
    median,
    memory_status,
    reset_peak_memory,
    row,
    temp_dir,
)

SIZE = 25 * 1024 * 1024
MB = 1024 * 1024


def _receipts(count: int) -> tuple[list[bytes], Any]:
    from pec_mcp.pecmail.signature import TrustStore
    from pec_mcp.simulator.clock import Clock
    from pec_mcp.simulator.pecmail.authority import create_authority
    from pec_mcp.simulator.pecmail.provider import PecProvider
    from pec_mcp.simulator.stats import Stats

    clock = Clock()
    authority = create_authority("pec.simulatore.test")
    provider = PecProvider("pec.simulatore.test", authority, clock=clock, stats=Stats(), delivery_delay=0.0)
    sender = provider.add_mailbox("studio@pec.simulatore.test", "x")
    original = (b"From: studio@pec.simulatore.test\r\nTo: ufficio@pec.esempio.it\r\nSubject: Atto\r\n"
                b"Message-ID: <atto@pec.simulatore.test>\r\n\r\nSi trasmette l'atto.\r\n")
    while len(sender.messages) < count:
        provider.submit("studio@pec.simulatore.test", ["ufficio@pec.esempio.it"], original)
    raws = [m.raw for m in list(sender.messages.values())[:count]]
    return raws, TrustStore([authority.root.certificate])


def _rate(function: Any, raws: list[bytes], trust: Any) -> float:
    function(raws[0], trust=trust)  # warm: imports, and the issuer link the trust store remembers
    # CPU time of this process: receipts per second of one core, whatever else the machine is doing.
    start = time.process_time()
    for raw in raws:
        function(raw, trust=trust)
    return len(raws) / (time.process_time() - start)


def signature_rows(quick: bool) -> list[dict[str, Any]]:
    from pec_mcp.pecmail.message import parse_pec_message
    from pec_mcp.pecmail.signature import verify_message

    count = 300 if quick else 2000
    raws, trust = _receipts(count)
    verify = _rate(verify_message, raws, trust)
    parse = _rate(parse_pec_message, raws, trust)
    return [
        row("pecmail", "receipts verified per second (signature)", verify, None, unit="/s", target=">= 500/s",
            met=verify >= 500, n=count, note="RSA-2048 SHA-256, chain to the trust list; one core"),
        row("pecmail", "receipts parsed and verified per second", parse, None, unit="/s", target="report",
            met=None, n=count, note="MIME + daticert.xml + signature + cross-check"),
    ]


@contextmanager
def pec_mail_provider() -> Iterator[dict[str, str]]:
    """``pec-mcp simulate`` in a subprocess; yields the PEC mail provider's SMTP port, CA file and account."""
    proc = subprocess.Popen([PYTHON, "-m", "pec_mcp", "simulate", "--port", str(free_port())], env=env(), cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for _ in range(20):
            line = proc.stderr.readline()
            found = re.search(r"SMTP \(TLS\) (\d+).*trust the test CA (\S+);.*accounts: (\S+) / (\S+?)[,\s]", line)
            if found:
                yield {"port": found.group(1), "ca": found.group(2), "user": found.group(3),
                       "password": found.group(4)}
                return
        raise RuntimeError("pec-mcp simulate did not print the PEC mail provider's ports")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()


def _child(mode: str, port: str, ca: str, user: str, password: str, folder: str) -> dict[str, int]:
    import anyio

    from pec_mcp.pecmail.compose import AttachmentSource, compose_message
    from pec_mcp.pecmail.connection import Endpoint, Login
    from pec_mcp.pecmail.smtp import SmtpClient

    def submit(path: Path) -> None:
        message = compose_message(sender=user, to=["ufficio@pec.esempio.it"], subject="Allegato",
                                  text="In allegato.", attachments=[AttachmentSource(path.name, path=path)])
        if mode == "naive":
            context = ssl.create_default_context(cafile=ca)
            with smtplib.SMTP_SSL("127.0.0.1", int(port), context=context, timeout=120) as smtp:
                smtp.login(user, password)
                smtp.sendmail(user, list(message.recipients), message.as_bytes())
            return
        # pec-mcp's own SMTP client, the one send_pec uses on a mailbox account: the message streams into DATA.
        client = SmtpClient(Endpoint("127.0.0.1", int(port), "tls", Path(ca)), Login(user, password), timeout=120)
        anyio.run(lambda: client.submit(sender=user, recipients=list(message.recipients), message=message))

    submit(Path(folder) / "small.pdf")
    before = memory_status("VmRSS")
    reset_peak_memory()
    submit(Path(folder) / "big.pdf")
    return {"before": before, "peak": memory_status("VmHWM")}


def _one(mode: str, provider: dict[str, str], folder: Path) -> int:
    args = [mode, provider["port"], provider["ca"], provider["user"], provider["password"], str(folder)]
    return child_peak(__file__, args, f"pecmail ({mode})")


def memory_rows(quick: bool) -> list[dict[str, Any]]:
    count = 1 if quick else 3
    with temp_dir() as tmp, pec_mail_provider() as provider:
        (tmp / "small.pdf").write_bytes(os.urandom(64 * 1024))
        (tmp / "big.pdf").write_bytes(os.urandom(SIZE))
        streamed, naive = [], []
        for _ in range(count):
            streamed.append(_one("stream", provider, tmp))
            naive.append(_one("naive", provider, tmp))
    ours, baseline = median(streamed) / MB, median(naive) / MB
    return [row("pecmail", "peak RSS over baseline, 25 MB file by SMTP", ours, baseline, unit="MB",
                target="<= 75 MB (3x file)", met=ours <= 3 * SIZE / MB, n=count,
                note="baseline: smtplib.sendmail with the whole message")]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return signature_rows(quick) + memory_rows(quick)


if __name__ == "__main__" and len(sys.argv) == 8 and sys.argv[1] == "child":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_child(*sys.argv[2:8])))
