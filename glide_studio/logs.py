"""The application's log: the standard library's logging into a rotating file in the per-user log folder.

``setup_logging()`` is called once by each front (the editor, the command line). The folder is platformdirs'
user log dir for "glide-studio" (``$GLIDE_STUDIO_LOG_DIR`` overrides it); the file rotates at 2 MB, keeping 5.
The first lines of every start name the versions and the machine; runs, errors and their tracebacks follow.
Nothing here imports torch: versions come from the installed distributions' metadata.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import platformdirs

from glide_studio import __version__

LOG_DIR_ENV = "GLIDE_STUDIO_LOG_DIR"
LOG_FILE = "glide-studio.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 5
_APP_NAME = "glide-studio"
_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d %(threadName)s] %(message)s"
_VERSIONED = ("torch", "numpy", "pillow", "PySide6-Essentials", "safetensors", "diffusers")

logger = logging.getLogger("glide_studio")


def log_dir() -> Path:
    """Where the log files are: ``$GLIDE_STUDIO_LOG_DIR``, else the platform's per-user log folder."""
    override = os.environ.get(LOG_DIR_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_log_dir(_APP_NAME, appauthor=False))


def log_file() -> Path:
    return log_dir() / LOG_FILE


def setup_logging(front: str, argv: list[str] | None = None, level: int = logging.INFO) -> Path | None:
    """Send the ``glide_studio`` loggers to the rotating file and log the start; returns the file, or None when
    the folder cannot be written (the program goes on without a log file rather than not start)."""
    path = log_file()
    for handler in list(logger.handlers):  # an earlier setup for another folder (tests, a changed setting)
        if getattr(handler, "_glide_studio_file", path) != path:
            logger.removeHandler(handler)
            handler.close()
    if not any(getattr(handler, "_glide_studio_file", None) == path for handler in logger.handlers):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                           encoding="utf-8", delay=False)
        except OSError as error:
            print(f"glide-studio: no log file ({path}: {error.strerror or error})", file=sys.stderr)
            return None
        handler._glide_studio_file = path
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
    logger.setLevel(level)
    arguments = sys.argv[1:] if argv is None else argv
    logger.info("glide-studio %s (%s) starting: %s", __version__, front, " ".join(arguments) or "no arguments")
    logger.info("Python %s on %s (%s); %s", platform.python_version(), platform.platform(), platform.machine(),
                ", ".join(versions()))
    return path


def versions() -> list[str]:
    """``name version`` of the libraries that shape a result, for those installed."""
    found = []
    for name in _VERSIONED:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def log_error(message: str, error: BaseException) -> None:
    """An error with its whole traceback."""
    logger.error(message, exc_info=(type(error), error, error.__traceback__))
