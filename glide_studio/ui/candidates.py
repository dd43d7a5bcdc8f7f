"""The candidates strip: the run's N results as thumbnails; click to view, Enter to accept, or discard."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
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

from glide_studio.runs.record import CandidateScore
from glide_studio.ui.thumbnails import thumbnail_icon

THUMB = 112
INDEX_ROLE = Qt.ItemDataRole.UserRole


class CandidatesStrip(QWidget):
    candidate_clicked = Signal(int)
    accept_requested = Signal()
    discard_requested = Signal()
    retry_requested = Signal()

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
        self.retry_button = QPushButton("Retry this area")
        self.retry_button.setToolTip("Run this region again with new seeds (a candidate may have missed the caption)")
        self.retry_button.setVisible(False)
        side.addWidget(self.hint)
        side.addStretch(1)
        side.addWidget(self.accept_button)
        side.addWidget(self.discard_button)
        side.addWidget(self.retry_button)
        layout.addLayout(side)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemClicked.connect(lambda item: self.candidate_clicked.emit(int(item.data(INDEX_ROLE))))
        self.accept_button.clicked.connect(self.accept_requested)
        self.discard_button.clicked.connect(self.discard_requested)
        self.retry_button.clicked.connect(self.retry_requested)
        self.set_candidates(None)

    def set_candidates(self, images: np.ndarray | None, order: Sequence[int] | None = None,
                       scores: Sequence[CandidateScore | None] = ()) -> None:
        """The run's candidates in `order` (best match first when the run was scored), each with its score and,
        when it looks like a missed insertion, a flag."""
        self.list.blockSignals(True)
        self.list.clear()
        images = [] if images is None else images
        order = range(len(images)) if order is None else order
        flagged = False
        for index in order:
            icon = thumbnail_icon(images[index], THUMB)
            score = scores[index] if index < len(scores) else None
            item = QListWidgetItem(icon, _label(index, score))
            item.setData(INDEX_ROLE, index)
            if score is not None:
                item.setToolTip(_tooltip(score))
                flagged |= score.missed
            item.setSizeHint(QSize(THUMB + 12, THUMB + 28))
            self.list.addItem(item)
        self.list.blockSignals(False)
        has_any = len(images) > 0
        self.accept_button.setEnabled(has_any)
        self.discard_button.setEnabled(has_any)
        self.retry_button.setVisible(flagged)
        if not has_any:
            self.hint.setText("Run to see candidates here.")
        elif flagged:
            self.hint.setText("⚠ marks a candidate that may not show the caption.")
        else:
            self.hint.setText("Best match first. Click to compare; Enter accepts." if scores
                              else "Click to compare; Enter accepts.")

    def candidate_at(self, row: int) -> int:
        item = self.list.item(row)
        return row if item is None else int(item.data(INDEX_ROLE))

    def select(self, index: int) -> None:
        self.list.blockSignals(True)
        for row in range(self.list.count()):
            if self.candidate_at(row) == index:
                self.list.setCurrentRow(row)
        self.list.blockSignals(False)

    def count(self) -> int:
        return self.list.count()

    def _row_changed(self, row: int) -> None:
        if row >= 0:
            self.candidate_clicked.emit(self.candidate_at(row))


def _label(index: int, score: CandidateScore | None) -> str:
    if score is None:
        return f"#{index + 1}"
    return f"{'⚠ ' if score.missed else ''}#{index + 1} · {score.similarity:.2f}"


def _tooltip(score: CandidateScore) -> str:
    text = f"Match with the caption (noised CLIP): {score.similarity:.3f}"
    if score.background is not None:
        text += f"\nBest match with a bare-background caption: {score.background:.3f}"
    if score.missed:
        text += "\nThis region looks more like background than like the caption: the model may have missed the " \
                "object. Retry this area draws it again with new seeds."
    return text
