"""File ▸ New: a blank canvas of a chosen size (white, as paper), after the usual Save / Discard / Cancel."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QSpinBox

from glide_studio.app.images import MAX_SIDE

DEFAULT_SIZE = (512, 512)
MIN_SIDE = 16


class NewCanvasDialog(QDialog):
    def __init__(self, parent=None, size: tuple[int, int] = DEFAULT_SIZE) -> None:
        super().__init__(parent)
        self.setWindowTitle("New picture")
        self.width_box, self.height_box = QSpinBox(), QSpinBox()
        for box, value in ((self.width_box, size[0]), (self.height_box, size[1])):
            box.setRange(MIN_SIDE, MAX_SIDE)
            box.setSingleStep(64)
            box.setSuffix(" px")
            box.setValue(value)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow("Width", self.width_box)
        layout.addRow("Height", self.height_box)
        layout.addRow(buttons)

    def chosen_size(self) -> tuple[int, int]:
        return self.width_box.value(), self.height_box.value()


def blank_picture(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


def new_canvas(window, size: tuple[int, int] | None = None) -> bool:
    """Asks for the size (unless ``size`` is given), then starts a new document on a white canvas."""
    if size is None:
        last = window.preferences.value("files/new_size", list(DEFAULT_SIZE))
        try:
            remembered = (int(last[0]), int(last[1]))
        except (TypeError, ValueError, IndexError):
            remembered = DEFAULT_SIZE
        dialog = NewCanvasDialog(window, remembered)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        size = dialog.chosen_size()
        window.preferences.set_value("files/new_size", list(size))
    if not window.files.may_replace_document("starting a new picture"):
        return False
    width, height = size
    window.controller.open_array(blank_picture(width, height), f"New {width}×{height}")
    window.controller.mark_saved()
    window.files.project_path = None
    window.update_title()
    window.canvas.fit()
    return True
