"""Files only their owner may read: recorded logs, findings, evidence bundles, reports and secrets.

What shadowdiff writes holds the bot's orders, txids and P&L, so files are created 0600 and directories
0700 (missing parents included), whatever the umask; an existing file or directory is tightened on use.
A secret (the tap token) is read only from a file nobody else can read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

from shadowdiff.model.errors import UsageError

FILE_MODE, DIR_MODE = 0o600, 0o700
MIN_TOKEN = 16

__all__ = ["open_private", "private_dir", "read_token_file", "tighten", "write_private"]


def private_dir(path: Path) -> Path:
    """``path`` and every missing parent created 0700; an existing ``path`` made 0700 if we own it."""
    missing = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is cut by the umask
    if path.is_dir() and path.stat().st_uid == os.getuid():
        os.chmod(path, DIR_MODE)
    return path


def open_private(path: Path, mode: str = "a", encoding: str | None = "utf-8", buffering: int = -1) -> IO[Any]:
    """``open(path, mode)`` for writing, the file created (or made) 0600, its missing parents 0700."""
    if path.parent != path and not path.parent.exists():
        private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its old mode otherwise
        if "b" in mode:
            return os.fdopen(fd, mode, buffering)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: str | bytes) -> None:
    binary = isinstance(data, bytes)
    with open_private(path, "wb" if binary else "w", None if binary else "utf-8") as out:
        out.write(data)


def tighten(directory: Path) -> None:
    """``directory`` and everything under it: directories 0700, files 0600."""
    os.chmod(directory, DIR_MODE)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(root, name), FILE_MODE)


def read_token_file(path: str | Path) -> bytes:
    """The secret on the first line of ``path``; UsageError unless the file is ours and 0600 (or 0400)."""
    where = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot read the token file: {exc.strerror}", where) from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError("the token file is not a regular file", where)
    if info.st_mode & 0o077:
        raise UsageError(
            f"the token file is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"it must be 0600: chmod 600 {where}",
            where,
        )
    try:
        with open(path, "rb") as handle:
            first = handle.read(4096).split(b"\n", 1)[0].strip()
    except OSError as exc:
        raise UsageError(f"cannot read the token file: {exc.strerror}", where) from None
    if len(first) < MIN_TOKEN:
        raise UsageError(f"the token must be at least {MIN_TOKEN} characters on the first line", where)
    return first
