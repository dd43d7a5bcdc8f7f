"""The window's geometry and its docks' layout, saved at close and restored at the next start."""

from __future__ import annotations

from PySide6.QtCore import QByteArray

GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
STATE_VERSION = 1
"""Raise it when the docks change in a way an old saved layout would misplace."""
ADVANCED_KEY = "window/advanced_settings"


def save_window_state(window) -> None:
    window.preferences.set_value(GEOMETRY_KEY, window.saveGeometry())
    window.preferences.set_value(STATE_KEY, window.saveState(STATE_VERSION))
    window.preferences.set_value(ADVANCED_KEY, window.controls.advanced_toggle.isChecked())


def restore_window_state(window) -> bool:
    """True when a saved layout was applied; a missing or unreadable one leaves the default layout."""
    geometry = window.preferences.value(GEOMETRY_KEY)
    state = window.preferences.value(STATE_KEY)
    window.controls.advanced_toggle.setChecked(window.preferences.value(ADVANCED_KEY) in (True, "true"))
    restored = []
    if isinstance(geometry, (QByteArray, bytes)) and len(geometry):
        restored.append(window.restoreGeometry(QByteArray(geometry)))
    if isinstance(state, (QByteArray, bytes)) and len(state):
        restored.append(window.restoreState(QByteArray(state), STATE_VERSION))
    return bool(restored) and all(restored)
