"""Writing a file so that a crash at any moment leaves either the old file or the whole new one."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """`write(file)` fills a temporary file beside `path`, which is flushed to disk and then renamed over it."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        # mkstemp makes an owner-only file: give the new file the mode a plain open() would have (the old file's
        # when there is one), so an exported picture is as readable as any other the user saves.
        os.fchmod(handle, _mode_for(path))
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _read_umask() -> int:
    umask = os.umask(0)  # the only way to read it: done once, at import, before any thread of ours writes
    os.umask(umask)
    return umask


_NEW_FILE_MODE = 0o666 & ~_read_umask()


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return _NEW_FILE_MODE


def check_room(folder: str | Path, needed_bytes: int) -> None:
    """Before minutes of work whose results go to `folder`: it must be writable and have `needed_bytes` free.
    Raises OSError with a message that says which and how much."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{folder} is not writable")
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise OSError(errno.ENOSPC, f"{folder} has {free / 2**20:.0f} MB free and the results need up to "
                                    f"{needed_bytes / 2**20:.0f} MB")
