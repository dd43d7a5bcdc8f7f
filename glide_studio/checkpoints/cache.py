"""The per-user cache folder for downloaded weights, and an inter-process lock per file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import platformdirs

from .errors import CheckpointError, DownloadLockedError

CACHE_ENV = "GLIDE_STUDIO_CACHE"
SAFETENSORS_SUFFIX = ".safetensors"
"""A checkpoint converted from its pickle sits beside it under this suffix."""
_APP_NAME = "glide-studio"


def cache_dir(override: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The cache folder: ``override``, else ``$GLIDE_STUDIO_CACHE``, else the platform's user cache."""
    if override is not None:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        path = Path(platformdirs.user_cache_dir(_APP_NAME, appauthor=False))
    path = path.expanduser()
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create the checkpoint cache folder {path}: {exc}") from exc
    return path


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def file_lock(path: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold the inter-process write lock of ``path`` (a ``<name>.lock`` file beside it).

    ``timeout`` is how long to wait for another holder, in seconds (negative: forever). When the wait
    runs out, DownloadLockedError says which file is busy.
    """
    # thread_local=False: the lock guards a file, so a second thread of this process must also wait.
    lock = filelock.FileLock(str(lock_path(path)), thread_local=False)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise DownloadLockedError(
            f"{path.name} is being written by another process (lock {lock_path(path)}); "
            "wait for it to finish and try again"
        ) from None
    try:
        yield
    finally:
        lock.release()
