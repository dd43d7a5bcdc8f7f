"""The timeline under the canvas: every step of the latest run, to scrub through and to fork from."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from glide_studio.app.controller import StudioController


class TimelineBar(QWidget):
    scrubbed = Signal(object)
    """The (h, w, 3) preview of the step the slider is on, or None when it is back at the live end."""
    fork_requested = Signal(int)

    def __init__(self, controller: StudioController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        self.label = QLabel("No steps yet")
        self.label.setMinimumWidth(150)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through the steps of the latest run")
        self.fork_button = QPushButton("Fork from here")
        self.fork_button.setToolTip("Go on from this step with the caption, mask and sketch as they are now")
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.fork_button)
        self.slider.valueChanged.connect(self._moved)
        self.fork_button.clicked.connect(self._fork)
        controller.timeline_changed.connect(self.refresh)
        controller.busy_changed.connect(lambda _busy: self._sync())
        self.refresh()

    def refresh(self) -> None:
        steps = self.controller.timeline
        at_end = self.slider.value() >= self.slider.maximum()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(steps) - 1))
        if at_end:
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self.slider.setEnabled(bool(steps))
        self._sync()

    def current(self):
        steps = self.controller.timeline
        return steps[self.slider.value()] if steps else None

    def _sync(self) -> None:
        step = self.current()
        busy = self.controller.busy
        self.fork_button.setEnabled(step is not None and step.state is not None and not busy
                                    and step.index < step.total - 1)
        self.label.setText("No steps yet" if step is None else f"{step.stage} · step {step.index + 1}/{step.total}")

    def _moved(self, _value: int) -> None:
        self._sync()
        step = self.current()
        at_end = self.slider.value() >= self.slider.maximum()
        self.scrubbed.emit(None if step is None or at_end else step.preview[0])

    def _fork(self) -> None:
        step = self.current()
        if step is not None:
            self.fork_requested.emit(step.index)
