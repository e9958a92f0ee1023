"""The SQLite store file on disk: checked before the server starts, created private, warned about when readable.

The store holds recipients, subjects and the audit trail: it is created readable by its owner only (0600, in a
folder of 0700 when pec-mcp creates it). A wrong ``store.path`` is found here, before any server starts, so that it
ends the command with one clear line instead of a failure deep inside the server.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pec_mcp.errors import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def store_problem(path: Path) -> str | None:
    """Why the store cannot be used at ``path`` (None when it can), without creating anything."""
    path = path.expanduser()
    if path.is_dir():
        return f"store.path ({path}) is a folder; give the path of a file, e.g. {path / 'pec-mcp.sqlite3'}"
    if path.exists():
        return _existing_file_problem(path)
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        return f"store.path ({path}) cannot be created: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"store.path ({path}) cannot be created: the folder {folder} is not writable by this user"
    return None


def _existing_file_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"store.path ({path}) cannot be read: {exc.strerror or type(exc).__name__}"
    if header and header != SQLITE_HEADER:
        return (f"store.path ({path}) is not a pec-mcp store (not an SQLite database); "
                "point store.path at a new file, or at the store you used before")
    if not os.access(path, os.W_OK):
        return f"store.path ({path}) is not writable by this user"
    return None


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_store_path(path: Path) -> None:
    """Raise ConfigError naming ``store.path`` when the store cannot be used there."""
    problem = store_problem(path)
    if problem is not None:
        raise ConfigError(problem, hint="Set store.path (or PEC_MCP_STORE__PATH) to a file pec-mcp can create.")


def prepare_store_file(path: Path) -> None:
    """Create the store's folder (0700) and an empty file (0600) when they do not exist yet.

    SQLite gives its -wal and -shm files the permissions of the database file, so they stay private too.
    """
    try:
        _make_folders(path.parent)
        descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
        os.close(descriptor)
    except OSError as exc:
        raise ConfigError(f"Cannot create the store at store.path ({path}): {exc.strerror or type(exc).__name__}",
                          hint="Set store.path (or PEC_MCP_STORE__PATH) to a file pec-mcp can create.") from None


def _make_folders(folder: Path) -> None:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=FOLDER_MODE)


def store_file_warning(path: Path) -> str | None:
    """A warning when an existing store can be read by other users of the machine (as for the config file)."""
    path = path.expanduser()
    if os.name != "posix" or not path.is_file():
        return None
    if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        return (f"The store {path} is readable by other users; it holds recipients, subjects and the audit trail. "
                f"Run: chmod 600 {path}")
    return None
