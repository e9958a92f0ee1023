"""What an idempotency key stands for: a hash of the content it sent, and what differs when it is reused.

A key answers "this send again" only for the same content, the way payment APIs treat a reused key: recipients
(order and case aside), subject, body, and attachments by name, size and SHA-256. The ledger keeps the hash and a
short description of the content (first recipients, subject, the start of the body, the files), so that a reuse
with other content is refused with both versions side by side, and nothing is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pec_mcp.errors import KeyReused

SHOWN_RECIPIENTS = 3
BODY_START = 60
_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(
    *,
    recipients: Sequence[str],
    subject: str,
    body: str,
    files: Sequence[tuple[str, int, str]],
    recipient_details: Sequence[Any] = (),
    options: str = "",
) -> dict[str, Any]:
    """The content of a send as the ledger keeps it: ``files`` are (name, size, sha256); ``recipient_details``
    (per-recipient variables of a bulk job or a certified email) count in the hash but are not shown; ``options``
    (a certified email's schedule and acceptance) count and are shown."""
    addresses = sorted(a.strip().lower() for a in recipients)
    everyone = json.dumps([addresses, _canonical(recipient_details)], sort_keys=True, ensure_ascii=False)
    return {
        "recipients": {"count": len(addresses), "first": addresses[:SHOWN_RECIPIENTS],
                       "sha256": hashlib.sha256(everyone.encode()).hexdigest()},
        "subject": subject,
        "body": {"sha256": hashlib.sha256(body.encode()).hexdigest(), "start": body[:BODY_START]},
        "attachments": [{"name": n, "size": s, "sha256": h} for n, s, h in files],
        "options": options,
    }


def content_hash(content: Mapping[str, Any]) -> str:
    """The hash of a described content: everything but the shown excerpts."""
    basis = [content["recipients"]["sha256"], content["subject"], content["body"]["sha256"],
             [(a["name"], a["size"], a["sha256"]) for a in content["attachments"]], content.get("options", "")]
    return hashlib.sha256(json.dumps(basis, ensure_ascii=False).encode()).hexdigest()


def check_same(
    *,
    key: str,
    first_hash: str | None,
    first_content: Mapping[str, Any] | None,
    first_recipients: Sequence[str],
    first_subject: str,
    first_state: str,
    content: Mapping[str, Any],
    addresses: Sequence[str],
) -> None:
    """Raise KeyReused, showing what differs, when ``key`` was first used for other content.

    A row written before content hashes were kept is compared on what it recorded: recipients and subject.
    """
    if first_hash is not None and first_content is not None:
        if first_hash == content_hash(content):
            return
        differences = differ(first_content, content)
    else:
        before = describe(recipients=first_recipients, subject=first_subject, body="", files=())
        now = describe(recipients=addresses, subject=content["subject"], body="", files=())
        differences = differ(before, now)
        if not differences:
            return
    raise KeyReused(
        f"The idempotency_key {key!r} was used before for a different send (that one is {first_state}), so this "
        f"one was refused. What differs: {'; '.join(differences) or 'the content'}"
    )


def differ(first: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two described contents, briefly, first version then this one."""
    out: list[str] = []
    a, b = first["recipients"], now["recipients"]
    if a["sha256"] != b["sha256"]:
        out.append(f"recipients: first {_people(a)}, now {_people(b)}")
    if first["subject"] != now["subject"]:
        out.append(f"subject: first {first['subject']!r}, now {now['subject']!r}")
    if first["body"]["sha256"] != now["body"]["sha256"]:
        out.append(f"body: first starts {_start(first['body']['start'])}, now starts {_start(now['body']['start'])}")
    files_a, files_b = _files(first["attachments"]), _files(now["attachments"])
    if files_a != files_b:
        out.append(f"attachments: first {files_a}, now {files_b}")
    if first.get("options", "") != now.get("options", ""):
        out.append(f"options: first {first.get('options', '')!r}, now {now.get('options', '')!r}")
    return out


def _people(recipients: Mapping[str, Any]) -> str:
    more = recipients["count"] - len(recipients["first"])
    shown = ", ".join(recipients["first"]) + (f" and {more} more" if more > 0 else "")
    return f"{recipients['count']} ({shown})"


def _start(text: str) -> str:
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def _files(attachments: Sequence[Mapping[str, Any]]) -> str:
    if not attachments:
        return "none"
    return ", ".join(f"{a['name']} ({a['size']} bytes, sha256 {a['sha256'][:12]})" for a in attachments)


def _canonical(details: Sequence[Any]) -> list[Any]:
    return sorted(json.dumps(d, sort_keys=True, ensure_ascii=False) for d in details)
