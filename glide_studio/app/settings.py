"""Preferences in QSettings."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings

from glide_studio.app.run_settings import RunSettings

ORGANIZATION = "GlideStudio"
APPLICATION = "GLIDE Studio"

COMPILE_KEY = "engine/compile_demo"
COMPILE_DEFAULT = False
"""Edit ▸ Compile the demo model: off. Measured on the 2-core CPU in bf16 (weights/MODEL_CARD.md, "torch.compile"):
a whole demo inpaint 0.97x and 1.33x compiled in two interleaved runs, a live update 1.40x and 1.42x, but the first
compile takes 34 min, every start rebuilds for 2-3 min, and compiled kernels hold the GIL (GUI stalls of 110-130 ms)."""


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

    def compile_networks(self) -> bool:
        """Compile the demo networks in the background and run them compiled once ready."""
        raw = self.settings.value(COMPILE_KEY, COMPILE_DEFAULT)
        if isinstance(raw, str):  # an ini file gives text back
            return raw.strip().lower() in ("true", "1", "yes", "on")
        return bool(raw)

    def set_compile_networks(self, on: bool) -> None:
        self.settings.setValue(COMPILE_KEY, bool(on))

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
