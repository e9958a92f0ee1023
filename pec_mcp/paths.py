"""File paths from callers: only inside the allowed folders, symlinks followed, checked before anything is read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pec_mcp.errors import LimitExceeded, PathNotAllowed

MB = 1024 * 1024


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


def _folders_text(folders: Sequence[Path]) -> str:
    return ", ".join(str(f) for f in folders) or "(none configured)"


def allowed_file(raw: str, folders: Sequence[Path]) -> Path:
    """The real path of an existing regular file inside one of ``folders`` (already resolved), or PathNotAllowed."""
    if not raw or "\x00" in raw:
        raise PathNotAllowed("An empty or invalid file path was given")
    candidate = _expanded(raw)
    if not candidate.is_absolute():
        raise PathNotAllowed(
            f"{raw!r} is a relative path; give the full path of a file inside {_folders_text(folders)}"
        )
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotAllowed(f"The file {raw} does not exist", hint="Check the path and the file name.") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise PathNotAllowed(f"The path {raw} cannot be resolved ({type(exc).__name__})") from None
    if not _inside(real, folders):
        shown = _shown_path(raw, candidate, real)
        raise PathNotAllowed(f"{shown} is outside the allowed folders ({_folders_text(folders)})")
    if not real.is_file():
        raise PathNotAllowed(f"{raw} is not a regular file")
    if not os.access(real, os.R_OK):
        raise PathNotAllowed(f"{raw} cannot be read (permission denied)")
    return real


def _shown_path(raw: str, candidate: Path, real: Path) -> str:
    """The path as given, and where it really leads when that differs: through a link, or through '..'."""
    plain = Path(os.path.normpath(candidate))  # '..' and '.' removed without following links
    if real != plain:
        return f"{raw} (a link to {real})"
    if str(real) != raw:
        return f"{raw} (that is {real})"
    return raw


def allowed_files(raws: Sequence[str], folders: Sequence[Path], *, max_total_mb: float) -> list[tuple[Path, int]]:
    """Each file checked and its size read from the file system, the total held to ``max_total_mb``."""
    seen: set[Path] = set()
    files: list[tuple[Path, int]] = []
    for raw in raws:
        real = allowed_file(raw, folders)
        if real in seen:
            raise PathNotAllowed(f"{raw} is given twice", hint="Attach each file once.")
        seen.add(real)
        files.append((real, real.stat().st_size))
    total = sum(size for _, size in files)
    if total > max_total_mb * MB:
        raise LimitExceeded(
            f"The files total {total / MB:.1f} MB, over the limit of {max_total_mb:g} MB (attachments.max_total_mb)",
            hint="Send fewer or smaller files, or compress them.",
        )
    return files


def allowed_target(raw: str, folders: Sequence[Path], *, default_name: str) -> Path:
    """Where to save a download: a file path (or a folder, then ``default_name`` inside it) within ``folders``.

    Never overwrites an existing file, and never follows a symlink out of the allowed folders.
    """
    if not raw or "\x00" in raw:
        raise PathNotAllowed("An empty or invalid save_to path was given")
    candidate = _expanded(raw)
    if not candidate.is_absolute():
        raise PathNotAllowed(f"save_to {raw!r} is relative; give a full path inside {_folders_text(folders)}")
    try:
        return _new_target(raw, candidate, folders, default_name)
    except (OSError, RuntimeError) as exc:  # a name too long for the file system, a symlink loop
        raise PathNotAllowed(f"save_to {raw[:200]} cannot be used ({exc.strerror or type(exc).__name__})"
                             if isinstance(exc, OSError) else f"save_to {raw[:200]} cannot be resolved") from None


def _new_target(raw: str, candidate: Path, folders: Sequence[Path], default_name: str) -> Path:
    if candidate.is_dir():
        candidate = candidate / Path(default_name).name
    parent = candidate.parent.resolve()
    target = parent / candidate.name
    if not _inside(parent, folders):
        raise PathNotAllowed(f"save_to {raw} is outside the allowed folders ({_folders_text(folders)})")
    if not parent.is_dir():
        raise PathNotAllowed(f"The folder {parent} does not exist", hint="Create it first or choose another folder.")
    if target.exists() or target.is_symlink():
        raise PathNotAllowed(f"{target} already exists", hint="Choose another file name; files are never overwritten.")
    return target


def _expanded(raw: str) -> Path:
    """``~`` expanded; ``~someone`` of an unknown user is refused instead of raising RuntimeError."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        raise PathNotAllowed(f"{raw[:200]} names a home folder that does not exist") from None


def write_new_file(target: Path, content: bytes | Iterable[bytes]) -> None:
    """Create ``target`` exclusively (never overwriting, never through a symlink) and write ``content`` (bytes, or
    pieces of it written as they come)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise PathNotAllowed(f"{target} already exists", hint="Choose another file name.") from None
    with os.fdopen(fd, "wb") as handle:
        for piece in [content] if isinstance(content, bytes) else content:
            handle.write(piece)


def allowed_folder(raw: str, folders: Sequence[Path], *, argument: str) -> Path:
    """The real path of an existing folder inside ``folders``, to save files into (``argument`` names it)."""
    if not raw or "\x00" in raw:
        raise PathNotAllowed(f"An empty or invalid {argument} path was given")
    candidate = _expanded(raw)
    if not candidate.is_absolute():
        raise PathNotAllowed(f"{argument} {raw!r} is relative; give the full path of a folder inside "
                             f"{_folders_text(folders)}")
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):
        raise PathNotAllowed(f"{argument} {raw[:200]} cannot be resolved") from None
    if not _inside(real, folders):
        raise PathNotAllowed(f"{argument} {_shown_path(raw, candidate, real)} is outside the allowed folders "
                             f"({_folders_text(folders)})")
    if not real.is_dir():
        raise PathNotAllowed(f"{argument} {raw} is not an existing folder",
                             hint="Create the folder first, or give another folder inside the allowed ones.")
    return real


def free_name(folder: Path, name: str) -> Path:
    """A path in ``folder`` for a file called ``name`` (made safe) that does not exist yet: ``atto.pdf``, else
    ``atto (2).pdf``, ``atto (3).pdf``, ... Files already there are never overwritten."""
    safe = "".join(c for c in Path(name.replace("\\", "/")).name if c.isprintable()).strip(" .") or "attachment"
    stem, suffix = Path(safe).stem, Path(safe).suffix
    target, n = folder / safe, 1
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{stem} ({n}){suffix}"
    return target
