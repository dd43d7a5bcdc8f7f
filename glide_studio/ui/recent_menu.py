"""File ▸ Open Recent: the recent files the preferences keep, newest first; a file gone since is said so."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMenu

from glide_studio.ui import dialogs


class RecentMenu(QMenu):
    """Rebuilt each time it opens, so it always shows the list as the preferences hold it now."""

    def __init__(self, window, parent=None) -> None:
        super().__init__("Open &Recent", parent)
        self.window = window
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        files = self.window.preferences.recent_files()
        for number, path in enumerate(files, start=1):
            label = f"&{number} {Path(path).name}" if number < 10 else Path(path).name
            action = self.addAction(label, lambda checked=False, path=path: self.open(path))
            action.setToolTip(path)
            action.setStatusTip(path)
        if not files:
            self.addAction("No recent files").setEnabled(False)
            return
        self.addSeparator()
        self.addAction("&Clear the list", self.clear_list)

    def open(self, path: str) -> bool:
        if not Path(path).is_file():
            preferences = self.window.preferences
            preferences.set_value("files/recent", [item for item in preferences.recent_files() if item != path])
            dialogs.show_error(self.window, "File not found",
                               f"{path} is no longer there (moved or deleted); it was taken off the recent list.")
            return False
        return self.window.files.open_path(path)

    def clear_list(self) -> None:
        self.window.preferences.set_value("files/recent", [])
