"""Extend canvas and fill (outpainting): the dialog asking how many pixels each side grows, and the window's
launcher that runs an `Outpainter` and reports on the status bar."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QWidget

from glide_studio.app.errors import StudioError
from glide_studio.app.outpaint import MAX_EXTEND, Outpainter
from glide_studio.ui import dialogs

SIDES = ("left", "top", "right", "bottom")
DEFAULTS = (0, 0, 128, 0)


class OutpaintDialog(QDialog):
    """Four spin boxes (0..2048 px) for left, top, right and bottom; `values()` gives them in that order."""

    def __init__(self, parent: QWidget | None = None, values: tuple[int, int, int, int] = DEFAULTS) -> None:
        super().__init__(parent)
        self.setWindowTitle("Extend canvas and fill")
        layout = QFormLayout(self)
        layout.addRow(QLabel("Grow the canvas by this many pixels on each side; the new area is painted by the "
                             "model under the current caption, one edit box at a time."))
        self.spins: dict[str, QSpinBox] = {}
        for side, value in zip(SIDES, values, strict=True):
            spin = QSpinBox(self)
            spin.setObjectName(f"{side}Spin")
            spin.setRange(0, MAX_EXTEND)
            spin.setSingleStep(16)
            spin.setSuffix(" px")
            spin.setValue(int(value))
            spin.valueChanged.connect(self._update_ok)
            self.spins[side] = spin
            layout.addRow(f"&{side.capitalize()}:", spin)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addRow(self.buttons)
        self._update_ok()

    def values(self) -> tuple[int, int, int, int]:
        left, top, right, bottom = (self.spins[side].value() for side in SIDES)
        return left, top, right, bottom

    def _update_ok(self, *_args) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(any(self.values()))

    @classmethod
    def ask(cls, parent: QWidget | None = None) -> tuple[int, int, int, int] | None:
        """The four numbers, or None when the user cancelled."""
        dialog = cls(parent)
        return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


class OutpaintLauncher(QObject):
    """What the window's "Extend canvas and fill…" action does: asks, starts, and tells the status bar.

    `window` is the main window: its `controller`, `statusBar()` and, when it has them, `controls` (the settings
    a run takes), `progress` (the bar) and `canvas` (the preview over the box). The controller answers only its
    own jobs, so this shows the boxes' progress and failures itself."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.outpainter = Outpainter(window.controller, parent=self)
        self.outpainter.progress.connect(self._on_progress)
        self.outpainter.step.connect(self._on_step)
        self.outpainter.finished.connect(lambda: self._end("Done", "Outpainted: the filled picture is in the "
                                                           "gallery; Enter accepts it.", 8000))
        self.outpainter.failed.connect(lambda message: self._failed(message))
        self.outpainter.cancelled.connect(lambda: self._end("Cancelled", "Outpainting cancelled: the extended "
                                                            "canvas is kept (its parent in the history is the "
                                                            "picture before).", 8000))

    def ask(self) -> None:
        if self.outpainter.running or self.window.controller.busy:
            self._say("Wait for the current run to end before extending the canvas.", 5000)
            return
        values = OutpaintDialog.ask(self.window)
        if values is None:
            return
        self.start(*values)

    def start(self, left: int, top: int, right: int, bottom: int) -> None:
        controls = getattr(self.window, "controls", None)
        if controls is not None:  # the caption and settings as the panel shows them, as Run takes them
            self.window.controller.set_run_settings(controls.run_settings())
        try:
            self.outpainter.start(left, top, right, bottom)
        except StudioError as error:
            self._say(str(error), 8000)

    def _on_progress(self, done: int, total: int) -> None:
        self._say(f"Outpainting: box {min(done + 1, total)} of {total}…" if done < total else "Outpainting done.")

    def _on_step(self, progress) -> None:
        """The window's progress bar and the box's preview, as for the window's own runs."""
        bar = getattr(self.window, "progress", None)
        if bar is not None:
            done = progress.index + 1
            bar.setRange(0, max(1, progress.total))
            bar.setValue(done)
            box, total = self.outpainter.boxes_done + 1, len(self.outpainter.boxes)
            bar.setFormat(f"box {box}/{total} · {progress.stage} {done}/{progress.total}")
        canvas = getattr(self.window, "canvas", None)
        if canvas is not None and progress.preview is not None and len(progress.preview):
            canvas.set_preview(progress.preview[0], only_in_mask=True)

    def _end(self, state: str, text: str, timeout: int) -> None:
        canvas = getattr(self.window, "canvas", None)
        if canvas is not None:
            canvas.set_preview(None)
        bar = getattr(self.window, "progress", None)
        if bar is not None:
            bar.setFormat(state)
        self._say(text, timeout)

    def _failed(self, message: str) -> None:
        self._end("Failed", f"Outpainting stopped: {message}", 10000)
        dialogs.show_error(self.window, "Outpainting failed", message)

    def _say(self, text: str, timeout: int = 0) -> None:
        self.window.statusBar().showMessage(text, timeout)
