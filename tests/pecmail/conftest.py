"""Fixtures for the mail tests: a real Dovecot IMAP server, started once per session and stopped at the end."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.pecmail.dovecot import DOVECOT, Dovecot, start_dovecot


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not os.path.exists(DOVECOT) and not shutil.which("dovecot"):
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: scripts/test.sh installs dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
