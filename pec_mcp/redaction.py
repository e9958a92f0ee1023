"""Secrets removed from text and from every log line: values as given, and as they appear URL-encoded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, quote_plus


class Redactor:
    """Replaces known secret values in any text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Also as they appear URL-encoded (a webhook token in a logged query string); longest first, so that a
        # secret containing another is removed whole.
        values = {s for s in secrets if len(s) >= 4}
        values |= {variant for s in values for variant in (quote(s, safe=""), quote_plus(s, safe=""))}
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def extend(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])


class RedactingFilter(logging.Filter):
    """A logging filter that removes secrets from every record that passes through a handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Exception texts may carry URLs or bodies: render them now, redacted, and drop the raw traceback.
            clean += "\n" + self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = clean, None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Attach the redacting filter to every root handler (uvicorn's access log included)."""
    flt = RedactingFilter(redactor)
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(flt)
