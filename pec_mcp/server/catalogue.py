"""The ``tools/list`` answer remembered between starts, so that a stdio server answers before building its tools.

Registering a tool with the SDK builds a pydantic model and JSON schemas from the function's signature, about 3 ms
a tool: a tenth of a second for the whole catalogue, paid by every IDE window that spawns the server. The answer
depends only on the installed code and the enabled toolsets, so it is kept in a small JSON file named after a
fingerprint of those: the installed versions of the SDK and pydantic, and the sizes and modification times of
pec-mcp's sources (the way Python checks bytecode, without reading them). Any change to pec-mcp, the SDK or
pydantic gives a new name, and the next start builds and remembers afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import mcp
import mcp_types
import pydantic

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[1]
# Bumped when the layout of the remembered file changes.
FORMAT = "1"


def default_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/pec-mcp``, else ``~/.cache/pec-mcp``."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pec-mcp"


def fingerprint(toolsets: Sequence[str]) -> str:
    """A name for the catalogue of these toolsets as built by the code installed now."""
    parts = [FORMAT, sys.version, pydantic.VERSION, ",".join(toolsets), *_stamps(PACKAGE)]
    parts += [_installed(mcp), _installed(mcp_types)]  # the SDK builds the schemas, mcp_types holds the Tool model
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _installed(package: ModuleType) -> str:
    """A package's installed version (the name of its metadata folder) and the stamp of its package file.

    ``importlib.metadata`` would take tens of milliseconds to find the version; the folder sits beside the package.
    """
    assert package.__file__ is not None
    path = Path(package.__file__).resolve()
    prefix = package.__name__ + "-"
    try:
        names = [entry.name for entry in os.scandir(path.parents[1])]
    except OSError:
        names = []
    versions = sorted(name for name in names if name.startswith(prefix) and name.endswith(".dist-info"))
    return ",".join([*versions, _stamp(path)])


def _stamps(folder: Path) -> Iterator[str]:
    entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_dir() and entry.name != "__pycache__":
            yield from _stamps(Path(entry.path))
        elif entry.name.endswith(".py"):
            yield _stamp(Path(entry.path))


def _stamp(path: Path) -> str:
    status = path.stat()
    return f"{path}:{status.st_size}:{status.st_mtime_ns}"


class Catalogue:
    """The remembered ``tools/list`` answer for one fingerprint: ``tools`` is None until one was remembered."""

    def __init__(self, directory: Path, key: str) -> None:
        self.path = directory / f"tools-{key}.json"
        self.tools: list[dict[str, Any]] | None = self._read()

    def _read(self) -> list[dict[str, Any]] | None:
        try:
            tools = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # unreadable or half-written by hand: build afresh
            log.debug("ignoring the tool catalogue %s: %s", self.path, type(exc).__name__)
            return None
        return tools if isinstance(tools, list) else None

    def remember(self, tools: list[dict[str, Any]]) -> None:
        """Keep the answer for the next start; a cache that cannot be written only costs the next start time."""
        self.tools = tools
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed, so that a server starting meanwhile never reads half a file.
            handle, aside = tempfile.mkstemp(dir=folder, prefix=".tools-", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(tools, out, ensure_ascii=False)
                os.replace(aside, self.path)
            except BaseException:
                os.unlink(aside)
                raise
            _prune(folder)
        except OSError as exc:
            log.debug("could not remember the tool catalogue in %s: %s", folder, type(exc).__name__)


# Catalogues of older versions, or of other toolset choices: a few are kept for servers started with other settings.
KEEP = 8


def _prune(folder: Path) -> None:
    remembered = sorted(folder.glob("tools-*.json"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for stale in remembered[KEEP:]:
        stale.unlink(missing_ok=True)
