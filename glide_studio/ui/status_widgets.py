"""The status bar and the run's progress bar, without Qt's synchronous repaints.

QProgressBar.setValue and setRange, and QStatusBar.showMessage, repaint at once rather than at the next paint.
A repaint inside a slot paints every dirty widget of the window there and then, so a run's start (which disables
half the panel and resets the bar) painted the whole window inside the Ctrl+Enter handler: 21 ms of one 45 ms
stall of the GUI thread (bench_gui_latency). Here they schedule a paint like any other change, and Qt paints
everything once, after the slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtWidgets import QProgressBar, QStatusBar, QWidget


@contextmanager
def painted_later(widget: QWidget) -> Iterator[None]:
    """Inside, the widget's repaint() does nothing; leaving, one update() schedules the paint it skipped."""
    if not widget.updatesEnabled():
        yield
        return
    widget.setUpdatesEnabled(False)
    try:
        yield
    finally:
        widget.setUpdatesEnabled(True)  # which calls update()


class RunProgress(QProgressBar):
    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name, for every caller
        with painted_later(self):
            super().setValue(value)

    def setRange(self, minimum: int, maximum: int) -> None:  # noqa: N802
        with painted_later(self):
            super().setRange(minimum, maximum)


class StatusBar(QStatusBar):
    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802
        with painted_later(self):
            super().showMessage(text, timeout)
