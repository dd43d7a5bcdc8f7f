"""The gallery: every candidate of every run of the document, accepted or not, newest run first. Click one to
see it on the canvas; accept it at any later time; delete it (after asking)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from glide_studio.app.controller import StudioController
from glide_studio.png_metadata import a1111_text
from glide_studio.ui.thumbnails import IconCache

THUMB = 72
ITEM_ROLE = Qt.ItemDataRole.UserRole


class GalleryPanel(QWidget):
    accept_requested = Signal(int, int)
    """(run, candidate)"""
    delete_requested = Signal(int, int)

    def __init__(self, controller: StudioController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._icons = IconCache(THUMB)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setMovement(QListView.Movement.Static)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setSpacing(4)
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Make the selected candidate the picture (Ctrl+Z takes it back)")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Remove the selected candidate from the gallery")
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.delete_button)
        layout.addLayout(buttons)
        self.list.currentItemChanged.connect(self._selected)
        self.accept_button.clicked.connect(lambda: self._emit(self.accept_requested))
        self.delete_button.clicked.connect(lambda: self._emit(self.delete_requested))
        controller.gallery_changed.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for run_index in reversed(range(len(self.controller.runs))):
            run = self.controller.runs[run_index]
            for candidate in run.kept():
                image = run.images[candidate]
                icon = self._icons.icon(run.images, candidate)
                score = run.score(candidate)
                flag = "⚠ " if score is not None and score.missed else ""
                item = QListWidgetItem(icon, f"{flag}{run.mark}{run_index + 1}·{candidate + 1}")
                item.setData(ITEM_ROLE, (run_index, candidate))
                height, width = image.shape[:2]
                settings = a1111_text(run.record.for_candidate(candidate), (width, height)).replace(", ", "\n")
                item.setToolTip("\n\n".join(part for part in (run.lineage(), settings) if part))
                item.setSizeHint(QSize(THUMB + 16, THUMB + 26))
                self.list.addItem(item)
        self._icons.forget_unused()
        self.list.blockSignals(False)
        self._sync_buttons()

    def selected(self) -> tuple[int, int] | None:
        item = self.list.currentItem()
        return None if item is None else item.data(ITEM_ROLE)

    def count(self) -> int:
        return self.list.count()

    def select(self, run: int, candidate: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ITEM_ROLE) == (run, candidate):
                self.list.setCurrentRow(row)
                return

    def _selected(self, *_args) -> None:
        self._sync_buttons()
        chosen = self.selected()
        if chosen is not None:
            run, candidate = chosen
            if self.controller.shown_run != run:
                self.controller.show_run(run)
            self.controller.view_candidate(candidate)

    def _emit(self, signal) -> None:
        chosen = self.selected()
        if chosen is not None:
            signal.emit(*chosen)

    def _sync_buttons(self) -> None:
        has = self.list.currentItem() is not None
        self.accept_button.setEnabled(has)
        self.delete_button.setEnabled(has)
