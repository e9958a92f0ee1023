"""Secrets removed from text and from every log line, tracebacks included."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from pec_mcp.redaction import RedactingFilter, Redactor, install_log_redaction

SECRET = "tok-9f8e7d6c5b4a"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def collected() -> Iterator[Callable[[], Collect]]:
    created: list[tuple[logging.Logger, Collect]] = []

    def make() -> Collect:
        handler = Collect()
        handler.addFilter(RedactingFilter(Redactor([SECRET])))
        logger = logging.getLogger("pec_mcp.test_redaction")
        logger.addHandler(handler)
        logger.propagate = False
        created.append((logger, handler))
        return handler

    yield make
    for logger, handler in created:
        logger.removeHandler(handler)


def test_the_redactor_removes_every_secret_longest_first_and_ignores_tiny_ones() -> None:
    redact = Redactor(["abcd", "abcdefgh", "xy"])
    assert redact("abcdefgh abcd xy") == "*** *** xy"
    assert Redactor(["abcd"]).extend(["wxyz"])("abcd wxyz") == "*** ***"


def test_the_log_filter_removes_secrets_from_messages_and_their_arguments(collected) -> None:
    handler = collected()
    logging.getLogger("pec_mcp.test_redaction").warning("token %s in %s", SECRET, f"Bearer {SECRET}")
    assert handler.lines == ["token *** in Bearer ***"]


def test_the_log_filter_removes_secrets_from_exceptions_and_their_tracebacks(collected) -> None:
    handler = collected()
    try:
        raise ValueError(f"the server refused password {SECRET}")
    except ValueError:
        logging.getLogger("pec_mcp.test_redaction").exception("call failed")
    text = "\n".join(handler.lines)
    assert "call failed" in text and "ValueError: the server refused password ***" in text
    assert SECRET not in text


def test_redaction_is_installed_once_on_the_root_handlers() -> None:
    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    try:
        install_log_redaction(Redactor([SECRET]))
        install_log_redaction(Redactor([SECRET]))
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
