"""Several replicas behind one address: confirmations sealed with the shared ``http.state_key``.

A confirmation asked by one replica comes back as a sealed ``requestState`` that any replica holding the same key
can open (AES-256-GCM, the SDK's own codec). The seal is bound to the user who was asked, so another user cannot
answer it. Without ``http.state_key`` each process seals with a key of its own, which suits one process.
"""

from __future__ import annotations

import hashlib
import hmac

from mcp.server.request_state import RequestStateSecurity

from pec_mcp.config import Settings
from pec_mcp.server.users import principal

# A confirmation left unanswered this long must be asked again.
CONFIRMATION_TTL = 600.0


def request_state_security(settings: Settings) -> RequestStateSecurity:
    key = settings.http.state_key
    if key is None:
        security = RequestStateSecurity.ephemeral(ttl=CONFIRMATION_TTL)
        security.bind_principal = principal
        return security
    return RequestStateSecurity(keys=[key.get_secret_value()], ttl=CONFIRMATION_TTL, bind_principal=principal)


def state_key_id(settings: Settings) -> str | None:
    """A fingerprint of ``http.state_key`` that tells keys apart without revealing them (None: no key)."""
    key = settings.http.state_key
    if key is None:
        return None
    return hmac.new(key.get_secret_value().encode(), b"pec-mcp state key id", hashlib.sha256).hexdigest()[:16]
