"""The candidates strip: the run's N results as thumbnails; click to view, Enter to accept, or discard."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from glide_studio.app.images import array_to_qimage, thumbnail

THUMB = 112


class CandidatesStrip(QWidget):
    candidate_clicked = Signal(int)
    accept_requested = Signal()
    discard_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setMovement(QListView.Movement.Static)
        self.list.setSpacing(4)
        self.list.setFixedHeight(THUMB + 40)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        layout.addWidget(self.list, 1)
        side = QVBoxLayout()
        self.hint = QLabel("Run to see candidates here.")
        self.hint.setObjectName("hintLabel")
        self.hint.setWordWrap(True)
        self.accept_button = QPushButton("Accept  ⏎")
        self.discard_button = QPushButton("Discard")
        side.addWidget(self.hint)
        side.addStretch(1)
        side.addWidget(self.accept_button)
        side.addWidget(self.discard_button)
        layout.addLayout(side)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemClicked.connect(lambda item: self.candidate_clicked.emit(self.list.row(item)))
        self.accept_button.clicked.connect(self.accept_requested)
        self.discard_button.clicked.connect(self.discard_requested)
        self.set_candidates(None)

    def set_candidates(self, images: np.ndarray | None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for index, image in enumerate(images if images is not None else []):
            pixmap = QPixmap.fromImage(array_to_qimage(thumbnail(image, THUMB)))
            icon = QIcon(pixmap)
            icon.addPixmap(pixmap, QIcon.Mode.Selected)  # no highlight tint over the picture
            item = QListWidgetItem(icon, f"#{index + 1}")
            item.setSizeHint(QSize(THUMB + 12, THUMB + 28))
            self.list.addItem(item)
        self.list.blockSignals(False)
        has_any = images is not None and len(images) > 0
        self.accept_button.setEnabled(has_any)
        self.discard_button.setEnabled(has_any)
        self.hint.setText("Click to compare; Enter accepts." if has_any else "Run to see candidates here.")

    def select(self, index: int) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentRow(index)
        self.list.blockSignals(False)

    def count(self) -> int:
        return self.list.count()

    def _row_changed(self, row: int) -> None:
        if row >= 0:
            self.candidate_clicked.emit(row)
