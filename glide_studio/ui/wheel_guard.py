"""Scrolling a long settings panel must never change a setting: spin boxes and combo boxes there take the mouse
wheel only once the user has clicked into them (as in Krita's and Blender's panels); until then the wheel
scrolls the panel."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QWidget


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = watched.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:  # on to the scroll area, as if the control were not there
            QCoreApplication.sendEvent(area.viewport(), event)
        return True


def guard_wheel(panel: QWidget) -> None:
    """Every spin box and combo box inside `panel` (now) takes the wheel only while it has the focus."""
    guard = _WheelGuard(panel)
    for widget in (*panel.findChildren(QAbstractSpinBox), *panel.findChildren(QComboBox)):
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel alone gives no focus
        widget.installEventFilter(guard)
