"""Scrolling a long settings panel must never change a setting: spin boxes and combo boxes there take the mouse
wheel only once the user has clicked into them (as in Krita's and Blender's panels); until then the wheel
scrolls the panel.

They are subclasses that override wheelEvent alone, rather than an event filter: a Python filter runs on every
event of every control (each paint among them), and each call waits for the GIL while a run's worker holds it,
which added up to most of a 45 ms stall of the window as a run started (bench_gui_latency).
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QComboBox, QDoubleSpinBox, QSpinBox


class _WheelWhenFocused:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel alone gives no focus

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if self.hasFocus():
            super().wheelEvent(event)
            return
        area = self.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:  # on to the scroll area, as if the control were not there
            QCoreApplication.sendEvent(area.viewport(), event)


class SpinBox(_WheelWhenFocused, QSpinBox):
    pass


class DoubleSpinBox(_WheelWhenFocused, QDoubleSpinBox):
    pass


class ComboBox(_WheelWhenFocused, QComboBox):
    pass
