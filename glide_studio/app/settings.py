"""Preferences in QSettings."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings

from glide_studio.app.run_settings import RunSettings

ORGANIZATION = "GlideStudio"
APPLICATION = "GLIDE Studio"


def default_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


class Preferences:
    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def run_settings(self) -> RunSettings:
        raw = self.settings.value("generation/params", "")
        try:
            return RunSettings.from_json(json.loads(raw)) if raw else RunSettings()
        except (TypeError, ValueError):
            return RunSettings()

    def set_run_settings(self, settings: RunSettings) -> None:
        self.settings.setValue("generation/params", json.dumps(settings.to_json()))

    def value(self, key: str, default=None):
        return self.settings.value(key, default)

    def set_value(self, key: str, value) -> None:
        self.settings.setValue(key, value)

    def recent_files(self) -> list[str]:
        raw = self.settings.value("files/recent", [])
        if isinstance(raw, str):
            raw = [raw]
        return [str(item) for item in (raw or [])]

    def add_recent_file(self, path: str) -> None:
        files = [path] + [item for item in self.recent_files() if item != path]
        self.settings.setValue("files/recent", files[:8])

    def sync(self) -> None:
        self.settings.sync()
