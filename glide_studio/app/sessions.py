"""Each open document's journal lives in a folder of its own, owned by one window of one live process.

A folder holds ``journal.sqlite`` and ``owner.json`` (the owning process id, host and start time). A folder
whose owner is gone (the process was killed, or the machine went down) and that was not closed on purpose
is a document to offer back at the next start; a live owner's folder is never touched by anyone else, so
two windows (or two app instances) never see each other's recovery.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from glide_studio.app.journal import Journal, JournalError
from glide_studio.atomic_files import write_atomically
from glide_studio.runs.inputs import data_dir

JOURNAL_NAME = "journal.sqlite"
OWNER_NAME = "owner.json"
BASELINE_KEY = "baseline"
"""Journal meta: the last event that only set the document up; anything after it is the user's work."""
_HELD: set[Path] = set()
"""Folders this process's windows hold open now."""


def documents_dir() -> Path:
    return data_dir() / "documents"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _owner(folder: Path) -> dict | None:
    try:
        return json.loads((folder / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return None


def _owned_by_a_live_process(folder: Path) -> bool:
    owner = _owner(folder)
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if pid == os.getpid():
        return folder.resolve() in _HELD
    return isinstance(pid, int) and _alive(pid)


class Session:
    """One document's folder, held by this process from `create`/`claim` until `close`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.journal = Journal(folder / JOURNAL_NAME)
        _HELD.add(folder.resolve())

    @classmethod
    def create(cls) -> Session:
        folder = documents_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        _write_owner(folder)
        return cls(folder)

    @classmethod
    def claim(cls, folder: Path) -> Session:
        """Take over an abandoned document's folder (recovery)."""
        if _owned_by_a_live_process(folder):
            raise JournalError(f"{folder.name} belongs to another open window")
        _write_owner(folder)
        return cls(folder)

    def close(self, keep: bool = False) -> None:
        """Ends this window's hold. `keep=False` (the work was saved or discarded on purpose) deletes the
        folder; `keep=True` leaves it for the next start to offer back."""
        self.journal.close()
        _HELD.discard(self.folder.resolve())
        if keep:
            return
        shutil.rmtree(self.folder, ignore_errors=True)

    def mark_baseline(self) -> None:
        """Everything journalled so far only set the document up: nothing to offer back if it ends here."""
        self.journal.set_meta(BASELINE_KEY, str(self.journal.last_seq()))


def _write_owner(folder: Path) -> None:
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    write_atomically(folder / OWNER_NAME, lambda file: file.write(json.dumps(owner).encode()))


def abandoned_documents() -> list[Path]:
    """Folders of documents whose window died with them, newest first; empty ones are cleared away."""
    root = documents_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir(), reverse=True):
        if not (folder / JOURNAL_NAME).is_file() or _owned_by_a_live_process(folder):
            continue
        try:
            journal = Journal(folder / JOURNAL_NAME)
            try:
                edited = journal.last_seq() > int(journal.meta(BASELINE_KEY) or 0)
            finally:
                journal.close()
        except JournalError:
            continue
        if edited:
            found.append(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return found


def discard_abandoned(folder: Path) -> None:
    """The user chose not to restore it."""
    if not _owned_by_a_live_process(folder):
        shutil.rmtree(folder, ignore_errors=True)
