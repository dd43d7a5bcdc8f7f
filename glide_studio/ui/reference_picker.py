"""The reference picture of Stable Diffusion runs (IP-Adapter image prompt) in the controls: a thumbnail, where it
comes from (a file, or the edit box's region of the canvas), and its strength control."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget

from glide_studio.ui.thumbnails import thumbnail_pixmap
from glide_studio.ui.wheel_guard import ComboBox

THUMBNAIL = 64



class ReferencePicker(QWidget):
    choose_requested = Signal()
    from_box_requested = Signal()
    clear_requested = Signal()

    def __init__(self, strength: QWidget, parent=None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.preview = QLabel("none")
        self.preview.setObjectName("referenceThumbnail")
        self.preview.setFixedSize(THUMBNAIL, THUMBNAIL)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFrameShape(QLabel.Shape.StyledPanel)
        self.choose = QPushButton("File…")
        self.choose.setToolTip("A picture whose look Stable Diffusion runs follow (IP-Adapter)")
        self.from_box = QPushButton("From box")
        self.from_box.setToolTip("The edit box's region of the picture as it is now becomes the reference")
        self.clear = QPushButton("Clear")
        self.strength = strength
        self.adapter = ComboBox()
        self.adapter.setToolTip("The IP-Adapter that reads the reference (with its CLIP image encoder)")
        layout.addWidget(self.preview, 0, 0, 3, 1)
        layout.addWidget(self.choose, 0, 1)
        layout.addWidget(self.from_box, 0, 2)
        layout.addWidget(QLabel("Strength"), 1, 1)
        layout.addWidget(strength, 1, 2)
        layout.addWidget(self.clear, 2, 1)
        layout.addWidget(self.adapter, 3, 0, 1, 3)
        self.choose.clicked.connect(self.choose_requested)
        self.from_box.clicked.connect(self.from_box_requested)
        self.clear.clicked.connect(self.clear_requested)
        self.show_reference(None)

    def set_adapters(self, choices: list[tuple[str, str]]) -> None:
        self.adapter.blockSignals(True)
        self.adapter.clear()
        for name, label in choices:
            self.adapter.addItem(label, name)
        self.adapter.blockSignals(False)

    def show_adapter(self, name: str) -> None:
        """Selects the adapter a run used, adding it when it is not one of the choices (a recorded path)."""
        self.adapter.blockSignals(True)
        if self.adapter.findData(name) < 0:
            self.adapter.addItem(name, name)
        self.adapter.setCurrentIndex(self.adapter.findData(name))
        self.adapter.blockSignals(False)

    def show_reference(self, picture: np.ndarray | None) -> None:
        if picture is None:
            self.preview.setPixmap(QPixmap())
            self.preview.setText("none")
            self.preview.setToolTip("No reference picture")
        else:
            self.preview.setPixmap(thumbnail_pixmap(picture, THUMBNAIL))
            self.preview.setToolTip(f"Reference picture, {picture.shape[1]}×{picture.shape[0]}")
        self.clear.setEnabled(picture is not None)

    def set_available(self, available: bool) -> None:
        """A reference is read by Stable Diffusion models only; for the others the picker is greyed out."""
        for widget in (self.preview, self.choose, self.from_box, self.adapter):
            widget.setEnabled(available)
        self.clear.setEnabled(available and self.preview.pixmap() is not None and not self.preview.pixmap().isNull())
