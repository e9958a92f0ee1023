"""The one exception tree of pec-mcp.

Every failure the package raises on purpose is a ``PecError``. Each carries a message written for the person or
model that reads it, whether trying again can help, and what to do next::

    PecError
    ├── ConfigError               a setting is missing or wrong (names the key)
    ├── InputError                the caller asked for something invalid; nothing was done
    │   ├── PathNotAllowed        a file outside attachments.allowed_dirs, or a missing one
    │   ├── LimitExceeded         too many recipients, too many MB, a blocked domain
    │   ├── NotConfirmed          a paid or legal action without the user's yes
    │   └── KeyReused             an idempotency_key used before for different content
    ├── ProviderError             the provider answered, and the answer is a failure
    │   ├── AuthenticationFailed  401/403, Mensatek Res -1
    │   ├── NotFound              the id is unknown to the provider
    │   ├── Rejected              the provider refused the request (400/406/428, a rule of its API)
    │   ├── InsufficientCredit    402, Mensatek Res -2/-5: top up the wallet
    │   ├── RateLimited           429: too many requests
    │   ├── ProviderUnavailable   5xx, HTML error pages, connection failures before anything was sent
    │   └── BadResponse           the answer cannot be understood (invalid JSON, unexpected shape)
    ├── OutcomeUnknown            a send may or may not have happened (timeout after the request went out)
    └── MalformedPecMessage       a received PEC message (or its daticert.xml) cannot be read as the rules say

The MCP layer turns these into tool errors in one place (``pec_mcp.server.errors``); providers map their wire
errors into this tree in one function each.
"""

from __future__ import annotations


class PecError(Exception):
    """Base of every deliberate pec-mcp failure."""

    retryable: bool = False
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        if retryable is not None:
            self.retryable = retryable

    def explain(self) -> str:
        """The message, whether retrying helps, and the next step: the text a model or a person reads."""
        parts = [self.message.rstrip(".") + "."]
        if self.retryable:
            parts.append("Retrying later may help.")
        elif isinstance(self, ProviderError):
            parts.append("Retrying the same call will not help.")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class ConfigError(PecError):
    """A configuration key is missing or has a wrong value."""

    default_hint = "Fix the configuration and restart the server."


class InputError(PecError):
    """The request itself is invalid; nothing was sent or changed."""

    default_hint = "Correct the arguments and call again."


class PathNotAllowed(InputError):
    """A file path is outside the allowed folders, missing, or not a regular file."""

    default_hint = "Use a file inside one of the folders listed in attachments.allowed_dirs."


class LimitExceeded(InputError):
    """A configured or legal limit would be exceeded."""


class KeyReused(InputError):
    """The same idempotency_key was used before for a different send (other recipients, subject, body or files)."""

    default_hint = (
        "Nothing was sent. Use a new idempotency_key for a new send; to get the first send's result again, repeat "
        "it with exactly the same content."
    )


class NotConfirmed(InputError):
    """A paid or legal action was not confirmed by the user."""

    default_hint = (
        "Show the user what will happen (call again with dry_run=true for a preview), ask them, and only after "
        "they say yes call again with confirm=true."
    )


class ProviderError(PecError):
    """The provider answered with a failure."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.provider = provider
        self.status = status
        self.code = code


class AuthenticationFailed(ProviderError):
    default_hint = "Check the credentials in the configuration (token, username, password) for this provider."


class NotFound(ProviderError):
    default_hint = "Check the id; list the items first if you do not have it."


class Rejected(ProviderError):
    default_hint = "Change the request as the provider's reason says."


class InsufficientCredit(ProviderError):
    default_hint = "Top up the provider account (wallet or credits), then call again."


class RateLimited(ProviderError):
    retryable = True
    default_hint = "Wait a little and call again."

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    retryable = True
    default_hint = "The provider is down or unreachable; try again in a few minutes."


class BadResponse(ProviderError):
    retryable = True
    default_hint = "The provider sent an answer pec-mcp cannot read; try again later, and report it if it persists."


class OutcomeUnknown(PecError):
    """The request may have reached the provider, and its answer was lost.

    Never retried automatically: a second attempt could send a second legal message.
    """

    default_hint = (
        "Do not send again blindly: check the receipts or the inbox first (find_pec_sendings, list_pec_inbox); "
        "send again only if no ACCETTAZIONE receipt appears."
    )

    def __init__(self, message: str, *, provider: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider


class MalformedPecMessage(PecError):
    """A received PEC message, or the daticert.xml inside it, does not follow the PEC rules and cannot be read.

    The message itself is kept as it was received; only its reading failed.
    """

    default_hint = (
        "The message is kept as received; read it as ordinary mail, and ask the sender's PEC provider if it should "
        "have been a valid PEC receipt."
    )
