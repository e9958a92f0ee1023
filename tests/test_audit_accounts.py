"""Every audit entry names the account it concerns, so a user limited to some accounts sees their own entries and
nobody else's, in the ledger resource and on the dashboard; entries of an older store are given theirs where the
ledger says it exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pec_mcp.records import Records
from pec_mcp.server.http.users import ToolFacts, User, _current, audit_view
from pec_mcp.store import MIGRATIONS, Store

FACTS = {"send_pec": ToolFacts("pec", False), "start_bulk_pec": ToolFacts("bulk", False),
         "send_certified_email": ToolFacts("certified", False), "register_mailbox": ToolFacts("mailbox", False)}
STUDIO_ONLY = User("anna", frozenset({"pec", "bulk", "certified", "mailbox"}), False, frozenset({"studio"}))


def store_of_schema_8(path: Path) -> None:
    """A store as schema 8 left it, with audit entries that named no account."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:8]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 8")
    db.executescript("""
        INSERT INTO sendings (id, provider, environment, account, idempotency_key, state, message_id, sender,
            recipients, subject, created_at, updated_at)
        VALUES (1, 'imap', 'offline', 'studio', NULL, 'sent', 'abc@studio.test', 'studio@pec.it', '["a@pec.it"]',
            'Diffida', 1, 1),
            (2, 'pecmassiva', 'offline', 'pecmassiva', NULL, 'sent', '2026031010000001', 'me@pec.it',
            '["b@pec.it"]', 'Sollecito', 2, 2);
        INSERT INTO jobs (id, provider, environment, account, subject, body, total, requests, cost_eur, created_at)
        VALUES ('job-1', 'imap', 'offline', 'studio', 'Avviso', 'Testo', 1, 1, 0, 3);
        INSERT INTO audit (at, action, actor, environment, summary, outcome, ref) VALUES
            (1, 'send_pec', 'anna', 'offline', 's', 'sent', 'abc@studio.test'),
            (2, 'send_pec', 'bruno', 'offline', 's', 'sent', '2026031010000001'),
            (3, 'start_bulk_pec', 'anna', 'offline', 's', 'started', 'job-1'),
            (4, 'send_certified_email', 'bruno', 'offline', 's', 'sent', '7001'),
            (5, 'register_mailbox', 'bruno', 'offline', 's', 'registered', 'box-1'),
            (6, 'delete_pec_message', 'bruno', 'offline', 's', 'deleted', '12');
    """)
    db.commit()
    db.close()


def test_an_older_store_gives_each_entry_its_account_where_the_ledger_says_it(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store_of_schema_8(path)
    store = Store(path)
    try:
        accounts = {e.at: e.account for e in store.audit_log()}
    finally:
        store.close()
    assert accounts == {1: "studio", 2: "pecmassiva", 3: "studio", 4: "mensatek", 5: None, 6: None}


def test_a_user_limited_to_an_account_sees_its_entries_and_nobody_elses(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.sqlite3")
    try:
        store.record_audit(action="send_pec", actor="anna", environment="offline", summary="mine", outcome="sent",
                           account="studio")
        store.record_audit(action="send_pec", actor="bruno", environment="offline", summary="theirs",
                           outcome="sent", account="pecmassiva")
        store.record_audit(action="send_pec", actor="old", environment="offline", summary="unknown", outcome="sent")
        store.record_audit(action="register_mailbox", actor="bruno", environment="offline", summary="a mailbox",
                           outcome="registered")
        token = _current.set(STUDIO_ONLY)
        try:
            seen = {e.summary for e in store.audit_log(view=audit_view(FACTS))}
        finally:
            _current.reset(token)
        everyone = {e.summary for e in store.audit_log(view=audit_view(FACTS))}  # no users configured: all of it
        records = Records(store, price_per_message_eur=0.05)
        on_dashboard = {r.summary for r in records.audit(accounts_allowed=frozenset({"studio"}))}
        all_rows = {(r.summary, r.account) for r in records.audit()}
    finally:
        store.close()
    assert seen == {"mine", "a mailbox"}  # a mailbox action concerns no account; an unknown one is not shown
    assert everyone == {"mine", "theirs", "unknown", "a mailbox"}
    assert on_dashboard == {"mine"}
    assert ("mine", "studio") in all_rows and ("unknown", None) in all_rows


def test_the_newest_entries_a_user_may_see_are_found_however_many_newer_ones_they_may_not(
        store_location: str) -> None:
    store = Store(store_location)
    pec_only = User("carla", frozenset({"pec"}), False, None)
    try:
        store.record_audit(action="send_pec", actor="anna", environment="offline", summary="mine", outcome="sent",
                           account="studio")
        for n in range(3):
            store.record_audit(action="send_pec", actor="bruno", environment="offline", summary=f"theirs {n}",
                               outcome="sent", account="pecmassiva")
            store.record_audit(action="send_certified_email", actor="bruno", environment="offline",
                               summary=f"certified {n}", outcome="sent", account="mensatek")
        seen = {}
        for user in (STUDIO_ONLY, pec_only):
            token = _current.set(user)
            try:
                seen[user.name] = [e.summary for e in store.audit_log(limit=2, view=audit_view(FACTS))]
            finally:
                _current.reset(token)
    finally:
        store.close()
    assert seen == {"anna": ["mine"], "carla": ["theirs 2", "theirs 1"]}
