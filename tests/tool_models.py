"""What the SDK derives from a tool function, derived once per test run rather than once per server built.

Every ``build_server`` registers some forty tools, and the SDK turns each function's signature into a pydantic
argument model and JSON schemas (``Tool.from_function``): about 0.3 s a server, which a process pays once but the
test suite paid at every connection of every test. The result depends only on the function's code, defaults,
annotations and the registration arguments, so it is kept under exactly those and reused, with the new function
in it (a server's tools still run their own closures). The first server of the run derives everything for real;
``PEC_MCP_TEST_TOOL_CACHE=0`` turns the reuse off.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from types import FunctionType
from typing import Any

from mcp.server.mcpserver.tools.base import Tool

_cache: dict[Hashable, Tool] = {}
_REAL = Tool.from_function.__func__  # type: ignore[attr-defined]


def _key(fn: Callable[..., Any], options: dict[str, Any]) -> Hashable | None:
    """Everything ``Tool.from_function`` reads, or None when ``fn`` is not a plain function (then no reuse)."""
    inner = inspect.unwrap(fn)
    if not isinstance(fn, FunctionType) or not isinstance(inner, FunctionType):
        return None
    return (fn.__code__, inner.__code__, fn.__module__, fn.__qualname__, fn.__doc__, repr(fn.__defaults__),
            repr(fn.__kwdefaults__), repr(inner.__annotations__), repr(sorted(options.items())))


@contextmanager
def derived_once() -> Iterator[None]:
    """While inside, ``Tool.from_function`` reuses what it derived for an identical function."""
    if os.environ.get("PEC_MCP_TEST_TOOL_CACHE") == "0":
        yield
        return
    real = _REAL

    def from_function(cls: type[Tool], fn: Callable[..., Any], *args: Any, **options: Any) -> Tool:
        key = None if args else _key(fn, options)
        if key is None:
            return real(cls, fn, *args, **options)  # type: ignore[no-any-return]
        if key not in _cache:
            _cache[key] = real(cls, fn, **options)
        known = _cache[key]
        # A copy of the schema of its own, as each build had (a JSON round trip: the schema is JSON, and this is
        # several times quicker than copy.deepcopy).
        return known.model_copy(update={"fn": fn, "parameters": json.loads(json.dumps(known.parameters))})

    Tool.from_function = classmethod(from_function)  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        Tool.from_function = classmethod(real)  # type: ignore[method-assign, assignment]


@contextmanager
def derived_afresh() -> Iterator[None]:
    """While inside, ``Tool.from_function`` is the SDK's own again (to compare against the reuse)."""
    current = Tool.__dict__["from_function"]
    Tool.from_function = classmethod(_REAL)  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        Tool.from_function = current  # type: ignore[method-assign]
