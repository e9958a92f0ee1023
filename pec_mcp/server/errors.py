"""The one place where errors become MCP errors: tool errors, refused arguments, unknown tools and prompts."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mcp import MCPError
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import INVALID_PARAMS
from pydantic import ValidationError

from pec_mcp.errors import NotFound, PecError
from pec_mcp.redaction import Redactor
from pec_mcp.store import unavailable

log = logging.getLogger("pec_mcp.server")

STORE_AWAY = (
    "The ledger's database could not be used ({reason}). Retrying later may help. If this call was a send, do not "
    "send it again: once the database answers, find_pec_sendings shows whether it left (every send is recorded "
    "before it leaves)."
)
UNEXPECTED = (
    "pec-mcp met an unexpected internal problem ({kind}). Nothing more is known here; the server's log has the "
    "details. If this was a send, check find_pec_sendings before sending again."
)


@contextmanager
def tool_errors(redactor: Redactor) -> Iterator[None]:
    """Run a tool body: a PecError becomes a ToolError the model can act on; anything else is logged and explained."""
    try:
        yield
    except ToolError:
        raise
    except PecError as exc:
        raise ToolError(redactor(exc.explain())) from None
    except Exception as exc:
        raise ToolError(redactor(_unexpected(exc, "a tool"))) from None


@contextmanager
def resource_errors(redactor: Redactor) -> Iterator[None]:
    """The same for resources, which answer with JSON-RPC errors instead of error results."""
    try:
        yield
    except ResourceError:
        raise
    except NotFound as exc:
        raise ResourceNotFoundError(redactor(exc.explain())) from None
    except PecError as exc:
        raise ResourceError(redactor(exc.explain())) from None
    except Exception as exc:
        raise ResourceError(redactor(_unexpected(exc, "a resource"))) from None


def _unexpected(exc: Exception, where: str) -> str:
    """What to say of an error no part of pec-mcp raised on purpose: the store's database not answering, by name;
    anything else, logged with its traceback."""
    reason = unavailable(exc)
    if reason is not None:
        log.warning("the store's database could not be used in %s: %s", where, reason)
        return STORE_AWAY.format(reason=reason)
    log.exception("unexpected error in %s", where)
    return UNEXPECTED.format(kind=type(exc).__name__)


# -- arguments the SDK refused before the tool ran -------------------------------------------------------------------

# What each kind of pydantic refusal means, in words for a model or a person; {limit} comes from the error's context.
# The library's own text (and its documentation URL) never reaches the client.
_REASONS: dict[str, str] = {
    "missing": "is required but was not given",
    "string_too_short": "is empty or too short (at least {min_length} characters)",
    "string_too_long": "is too long ({length} characters; at most {max_length})",
    "too_short": "has too few items (at least {min_length})",
    "too_long": "has too many items (at most {max_length})",
    "string_type": "must be text",
    "string_pattern_mismatch": "is not in the expected format",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list, even for one item",
    "dict_type": "must be an object of names and values",
    "model_type": "must be an object",
    "date_type": "must be a date",
    "date_parsing": "is not a date",
    "date_from_datetime_parsing": "is not a date",
    "date_from_datetime_inexact": "must be a date without a time",
    "datetime_type": "must be a date and time",
    "datetime_parsing": "is not a date and time",
    "datetime_from_date_parsing": "is not a date and time",
    "timezone_aware": "needs a time zone",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be one of: {expected}",
    "enum": "must be one of: {expected}",
    "extra_forbidden": "is not an accepted field here",
}
# Examples by kind of error, used when the argument's schema gives none.
_EXAMPLES: dict[str, str] = {
    "date_type": "2026-03-31", "date_parsing": "2026-03-31", "date_from_datetime_parsing": "2026-03-31",
    "date_from_datetime_inexact": "2026-03-31",
    "datetime_type": "2026-12-01T10:00:00+01:00", "datetime_parsing": "2026-12-01T10:00:00+01:00",
    "datetime_from_date_parsing": "2026-12-01T10:00:00+01:00", "timezone_aware": "2026-12-01T10:00:00+01:00",
    "int_type": "1", "int_parsing": "1", "int_from_float": "1", "float_type": "1.5", "float_parsing": "1.5",
    "bool_type": "true", "bool_parsing": "true",
}
# Examples for the formats our schemas use as patterns.
_PATTERN_EXAMPLES: dict[str, str] = {r"^\d{2}/\d{2}/\d{4}$": "dd/mm/yyyy, e.g. 31/01/1980"}
_SHOWN = 60  # characters of a given value quoted back; enough to recognise it, never a whole body


def describe_argument_errors(
    tool: str, error: ValidationError, schema: dict[str, Any] | None, redactor: Redactor | None = None,
    *, kind: str = "tool",
) -> str:
    """One sentence per wrong argument: which, what was given, what is accepted with an example; then what to do."""
    problems = [_problem(item, schema or {}) for item in error.errors()]
    text = (f"The arguments of the {kind} {tool} were refused, nothing was done: " + " ".join(dict.fromkeys(problems))
            + " Correct these arguments and call again.")
    return redactor(text) if redactor is not None else text


def _problem(item: Any, schema: dict[str, Any]) -> str:
    loc = [part for part in item["loc"] if part not in ("function-after", "function-before")]
    name = _argument_name(loc)
    prop = _property(schema, loc)
    kind = str(item["type"])
    context = {**item.get("ctx", {})}
    if kind in ("string_too_long", "string_too_short") and isinstance(item.get("input"), str):
        context["length"] = len(item["input"])
    template = "is empty" if kind == "string_too_short" and context.get("min_length") == 1 else _REASONS.get(kind)
    if template is None:
        reason = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    else:
        try:
            reason = template.format(**context)
        except (KeyError, IndexError):
            reason = template.split(" (")[0].split(": {")[0]
    given = "" if kind == "missing" else f" (given: {_shown(item.get('input'))})"
    accepted = _accepted(prop, kind)
    return f"`{name}` {reason}{given}.{accepted}"


def _argument_name(loc: list[Any]) -> str:
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif str(part).startswith(("literal[", "nullable[", "list[", "union[", "str", "int", "date")) and name:
            continue  # pydantic's names of the union member tried; not the caller's
        else:
            name += ("." if name else "") + str(part)
    return name or "arguments"


def _property(schema: dict[str, Any], loc: list[Any]) -> dict[str, Any]:
    """The JSON schema of the argument at ``loc`` (nested models and list items followed through $defs)."""
    defs = schema.get("$defs", {})
    current: dict[str, Any] = schema
    for part in loc:
        current = _resolve(current, defs)
        if isinstance(part, int):
            current = _resolve(current, defs).get("items", {})
        elif part in current.get("properties", {}):
            current = current["properties"][part]
        else:
            continue
    return _resolve(current, defs)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return dict(defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {}))
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            merged = {**node, **_resolve(option, defs)}
            merged.pop("anyOf", None)
            return merged
    return node


def _accepted(prop: dict[str, Any], kind: str) -> str:
    parts = []
    description = prop.get("description")
    if description:
        parts.append(f"Accepted: {description.rstrip('.')}")
    if "enum" in prop and kind not in ("literal_error", "enum"):
        parts.append("one of: " + ", ".join(str(v) for v in prop["enum"]))
    example = _example(prop, kind)
    if example and (not description or example not in description):
        parts.append(f"e.g. {example}")
    return (" " + "; ".join(parts) + ".") if parts else ""


def _example(prop: dict[str, Any], kind: str) -> str | None:
    if prop.get("pattern") in _PATTERN_EXAMPLES:
        return _PATTERN_EXAMPLES[prop["pattern"]]
    if prop.get("format") == "date":
        return "2026-03-31"
    if prop.get("format") == "date-time":
        return "2026-12-01T10:00:00+01:00"
    if kind == "list_type" or prop.get("type") == "array":
        return '["mario.rossi@pec.it"]' if "string" in str(prop.get("items", {})) else "[...]"
    if "enum" in prop:
        return str(prop["enum"][0])
    return _EXAMPLES.get(kind)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def unknown_tool(name: str, listed: Sequence[str]) -> MCPError:
    """A call to a tool that is not listed: a protocol error (-32602), as the MCP specification shows it."""
    close = difflib.get_close_matches(name, listed, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}.{hint} The tools available are: "
                    + ", ".join(sorted(listed)) + ".")


def unknown_prompt(name: str, listed: Sequence[str]) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}. The prompts available are: "
                    + ", ".join(sorted(listed)) + ".")


def missing_prompt_arguments(name: str, missing: Sequence[str], described: dict[str, dict[str, Any]]) -> str:
    parts = []
    for arg in missing:
        description = described.get(arg, {}).get("description")
        parts.append(f"`{arg}` is required but was not given." + (f" Accepted: {description}." if description else ""))
    return f"The arguments of the prompt {name} were refused: " + " ".join(parts) + " Give them and ask again."


def bad_prompt_arguments(name: str, message: str) -> MCPError:
    """A prompt's arguments are wrong: -32602 (invalid params), with the accepted values."""
    return MCPError(code=INVALID_PARAMS, message=message)


# A word that could be a tool name: snake_case with at least one underscore.
_TOOLISH = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def only_listed_tools(text: str, listed: Collection[str], every_tool: Collection[str]) -> str:
    """The text without the sentences that point to a tool the client cannot see (a toolset left out).

    Hints are written for the whole catalogue; this is the one place that fits them to the tools listed now.
    """
    hidden = set(every_tool) - set(listed)
    if not hidden or not any(word in hidden for word in _TOOLISH.findall(text)):
        return text
    sentences = re.split(r"(?<=[.;:])\s+(?=[A-Z])", text)
    kept = [s for s in sentences if not any(word in hidden for word in _TOOLISH.findall(s))]
    return " ".join(kept)


def validation_cause(exc: BaseException) -> ValidationError | None:
    """The pydantic ValidationError behind an SDK error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ValidationError):
            return seen
        seen = seen.__cause__
    return None
