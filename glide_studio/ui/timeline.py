"""The timeline under the canvas: every step of the run picked in the gallery (the latest by default, older ones
read back from the journal), to scrub through and to fork from; for a sketch-to-image run, a strength scrubber
that re-runs it from another noise level."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from glide_studio.app.controller import StudioController
from glide_studio.pipelines.request import Mode

STRENGTH_SETTLE_MS = 300
"""A strength picked with the keyboard or a click on the groove waits this long for the next before re-running."""


class TimelineBar(QWidget):
    scrubbed = Signal(object)
    """The (h, w, 3) preview of the step the slider is on, or None when it is back at the live end."""
    fork_requested = Signal(int)
    strength_requested = Signal(float)
    """Re-run the timeline's sketch-to-image run from this noise level (the strength scrubber)."""

    def __init__(self, controller: StudioController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        rows = QVBoxLayout(self)
        rows.setContentsMargins(8, 2, 8, 2)
        rows.setSpacing(2)
        steps_row = QHBoxLayout()
        self.label = QLabel("No steps yet")
        self.label.setMinimumWidth(190)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Scrub through the steps of the run picked in the gallery (the latest by default)")
        self.fork_button = QPushButton("Fork from here")
        self.fork_button.setToolTip("Go on from this step with the caption, mask and sketch as they are now")
        steps_row.addWidget(self.label)
        steps_row.addWidget(self.slider, 1)
        steps_row.addWidget(self.fork_button)
        rows.addLayout(steps_row)

        self.strength_row = QWidget()
        strength_row = QHBoxLayout(self.strength_row)
        strength_row.setContentsMargins(0, 0, 0, 0)
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(190)
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(1, 100)
        self.strength_slider.setToolTip("Re-run this sketch-to-image run from another noise level: below the one it "
                                        "started at, the steps above are shared with it")
        self.strength_hint = QLabel()
        strength_row.addWidget(self.strength_label)
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength_hint)
        rows.addWidget(self.strength_row)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(STRENGTH_SETTLE_MS)
        self._settle.timeout.connect(self._request_strength)

        self.slider.valueChanged.connect(self._moved)
        self.fork_button.clicked.connect(self._fork)
        self.strength_slider.valueChanged.connect(self._strength_moved)
        self.strength_slider.sliderReleased.connect(self._request_strength)
        controller.timeline_changed.connect(self.refresh)
        controller.busy_changed.connect(lambda _busy: self._sync())
        controller.gallery_changed.connect(self._sync)  # the label names the run once it is in the gallery
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
        request = self.controller.timeline_request
        sketch = request is not None and request.mode == Mode.SDEDIT
        self.strength_row.setVisible(sketch)
        if sketch and not self.strength_slider.isSliderDown():
            self.strength_slider.blockSignals(True)
            self.strength_slider.setValue(round(request.strength * 100))
            self.strength_slider.blockSignals(False)
        self._sync()

    def current(self):
        steps = self.controller.timeline
        return steps[min(self.slider.value(), len(steps) - 1)] if steps else None

    def _sync(self) -> None:
        step = self.current()
        busy = self.controller.busy
        self.fork_button.setEnabled(step is not None and step.can_fork and not busy and step.index < step.total - 1)
        which = self._which_run()
        self.label.setText("No steps yet" if step is None
                           else f"{which}{step.stage} · step {step.index + 1}/{step.total}")
        self.strength_slider.setEnabled(not busy)
        self._sync_strength()

    def _which_run(self) -> str:
        number = next((index for index, run in enumerate(self.controller.runs)
                       if run.run_id and run.run_id == self.controller.timeline_run_id), None)
        return "" if number is None else f"Run {number + 1} · "

    def _sync_strength(self) -> None:
        request = self.controller.timeline_request
        if request is None or request.mode != Mode.SDEDIT:
            return
        strength = self.strength_slider.value() / 100
        self.strength_label.setText(f"Strength {strength:.2f} (ran at {request.strength:.2f})")
        shared = self.controller.strength_start(strength)
        self.strength_hint.setText("fresh run" if shared is None else f"shares steps 1–{shared.index + 1}")

    def _moved(self, _value: int) -> None:
        self._sync()
        step = self.current()
        at_end = self.slider.value() >= self.slider.maximum()
        self.scrubbed.emit(None if step is None or at_end else step.preview[0])

    def _fork(self) -> None:
        step = self.current()
        if step is not None:
            self.fork_requested.emit(step.index)

    def _strength_moved(self, _value: int) -> None:
        self._sync_strength()
        if not self.strength_slider.isSliderDown():
            self._settle.start()

    def _request_strength(self) -> None:
        self._settle.stop()
        request = self.controller.timeline_request
        strength = self.strength_slider.value() / 100
        if request is not None and request.mode == Mode.SDEDIT and abs(strength - request.strength) > 1e-9:
            self.strength_requested.emit(strength)
