"""Crash recovery: the session is saved on a timer; a clean exit removes it, so a leftover means a crash."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from glide_studio.app.project import PROJECT_SUFFIX, ProjectData, save_project

RECOVERY_NAME = "last-session" + PROJECT_SUFFIX
LOCK_NAME = "session.lock"


class Autosaver(QObject):
    saved = Signal(str)
    failed = Signal(str)

    def __init__(
        self,
        directory: Path,
        snapshot: Callable[[], ProjectData],
        interval_seconds: int = 60,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.directory = Path(directory)
        self._snapshot = snapshot
        self.dirty = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_seconds * 1000)
        self.timer.timeout.connect(self.save_if_dirty)

    @property
    def recovery_path(self) -> Path:
        return self.directory / RECOVERY_NAME

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK_NAME

    @property
    def previous_path(self) -> Path:
        return self.directory / ("previous-session" + PROJECT_SUFFIX)

    def claim_recovery(self) -> Path | None:
        """The autosave of a session that did not end cleanly, moved aside so this session's autosave
        cannot overwrite it; None when the last session ended cleanly."""
        if not (self.lock_path.exists() and self.recovery_path.exists()):
            return None
        os.replace(self.recovery_path, self.previous_path)
        return self.previous_path

    def begin_session(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock_path.write_text(str(os.getpid()))
        self.timer.start()

    def mark_dirty(self, *_args) -> None:
        self.dirty = True

    def save_if_dirty(self) -> None:
        if self.dirty:
            self.save_now()

    def save_now(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            save_project(self.recovery_path, self._snapshot())
        except Exception as error:  # noqa: BLE001 - autosave must never interrupt the user
            self.failed.emit(f"Autosave failed: {error}")
            return False
        self.dirty = False
        self.saved.emit(str(self.recovery_path))
        return True

    def end_session(self) -> None:
        """Clean exit: nothing to recover next time."""
        self.timer.stop()
        for path in (self.recovery_path, self.lock_path):
            path.unlink(missing_ok=True)

    def discard_recovery(self) -> None:
        self.recovery_path.unlink(missing_ok=True)
