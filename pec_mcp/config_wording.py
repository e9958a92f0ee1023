"""How a wrong setting is explained: the key, what is wrong, what is accepted, never the value.

Kept apart from the settings themselves and driven by the settings model, so that every section (including
``[accounts.<name>]`` or ``[http.users.<name>]`` style tables of models) gets the same wording without a line here.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

ENV_PREFIX = "PEC_MCP_"

# Placeholders as documentation writes them. A secret that still holds one would be sent to the provider as it is.
PLACEHOLDER_MARKS = ("…", "...", "<", ">", "YOUR-", "YOUR_", "CHANGE-ME", "CHANGEME")


def usable_secret(value: SecretStr) -> SecretStr:
    """Refuse a secret that cannot work: empty, a documentation placeholder, or not printable ASCII.

    Provider credentials travel in HTTP headers, which carry ASCII only: a typographic ellipsis or an accented
    letter would fail on every call. The message never includes the value.
    """
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError("is empty; remove the line to leave it unset, or give the real value")
    if any(mark in text.upper() for mark in PLACEHOLDER_MARKS):
        raise ValueError("still holds a placeholder from the documentation (such as <...>, YOUR-..., or an ellipsis); "
                         "replace it with the real value from the provider")
    if not _printable_ascii(text):
        raise ValueError("contains characters other than printable ASCII (letters with accents, typographic "
                         "quotes or dots, spaces at the ends, control characters); credentials are sent in HTTP "
                         "headers, which carry ASCII only: copy the value again from the provider")
    return value


def usable_header_text(value: str) -> str:
    """The same for a plain setting sent in a header (a user name): ASCII, and not a placeholder."""
    if not value.strip():
        raise ValueError("is empty; remove the line to leave it unset")
    if any(mark in value.upper() for mark in PLACEHOLDER_MARKS):
        raise ValueError("still holds a placeholder from the documentation; replace it with the real value")
    if not _printable_ascii(value):
        raise ValueError("contains characters other than printable ASCII; it is sent in an HTTP header")
    return value


def _printable_ascii(text: str) -> bool:
    return text == text.strip() and all(" " <= ch <= "~" for ch in text)


def describe_validation_error(exc: ValidationError, file: Path | None, model: type[BaseModel]) -> str:
    """One sentence per wrong key: where it was set, what is wrong, what is accepted."""
    # With no file, every setting came from a variable: naming it tells a person at a shell what to change.
    problems = [describe_problem(tuple(error["loc"]), error, model) + (_variable(error["loc"]) if file is None else "")
                for error in exc.errors()]
    where = f" in {file} or the {ENV_PREFIX}* environment" if file else f" in the {ENV_PREFIX}* environment"
    return f"Invalid configuration{where}: " + "; ".join(dict.fromkeys(problems))


def _variable(loc: tuple[Any, ...]) -> str:
    return f" (set by {ENV_PREFIX}{'__'.join(str(part) for part in loc).upper()})"


def describe_problem(loc: tuple[Any, ...], error: Any, model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: {unknown_key(loc, model)}"
    if kind in ("tuple_type", "list_type", "set_type", "frozen_set_type"):
        return f"{key}: must be a list{_list_example(loc, model)}"
    if kind == "literal_error":
        return f"{key}: {error['msg'].replace('Input should be', 'must be')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        message = "is required"
    return f"{key}: {message}"


def unknown_key(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    """``is not a known setting``, with the nearest known key or the section a top-level key belongs to."""
    name = str(loc[-1])
    parent = _model_at(model, loc[:-1])
    known = sorted(parent.model_fields) if parent is not None else []
    if len(loc) == 1:
        sections = [section for section, sub in _sections(model) if name in sub.model_fields]
        if sections:
            where = " or ".join(f"[{section}]" for section in sections)
            return f"is not a top-level setting; it belongs in a section: {where} (e.g. [{sections[0]}] {name} = ...)"
    guess = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    if guess:
        return f"is not a known setting; did you mean {guess[0]!r}?"
    if known:
        return "is not a known setting (known here: " + ", ".join(known) + ")"
    return "is not a known setting"


def _list_example(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    field = _field_at(model, loc)
    items = "folders" if field is not None and "Path" in str(field) else "values"
    key = str(loc[-1])
    section = "__".join(str(part).upper() for part in loc)
    example = '["~/Documents/PEC"]' if items == "folders" else '["a", "b"]'
    return (f" of {items}, even for one: {key} = {example} in the file, or "
            f"{ENV_PREFIX}{section}='{example}' (JSON) in the environment")


def _sections(model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    for name, info in model.model_fields.items():
        sub = _as_model(info.annotation)
        if sub is not None:
            yield name, sub


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model that holds the keys at ``loc``; a table of models (``dict[str, Model]``) skips the entry name."""
    current: Any = model
    parts = list(loc)
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(parts.pop(0)))
        if info is None:
            return None
        annotation = info.annotation
        nested = _as_model(annotation)
        if nested is None:
            value_type = _dict_value(annotation)
            if value_type is None:
                return None
            if parts:
                parts.pop(0)  # the entry's own name, e.g. "studio" in accounts.studio.password
            nested = value_type
        current = nested
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    parent = _model_at(model, loc[:-1])
    if parent is None:
        return None
    info = parent.model_fields.get(str(loc[-1]))
    return None if info is None else info.annotation


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in _union_members(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _dict_value(annotation: Any) -> type[BaseModel] | None:
    for candidate in _union_members(annotation):
        if typing.get_origin(candidate) is dict:
            args = typing.get_args(candidate)
            if len(args) == 2:
                return _as_model(args[1])
    return None


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)
