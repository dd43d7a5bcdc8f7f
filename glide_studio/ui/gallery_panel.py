"""The gallery: every candidate of every run of the document, accepted or not, newest run first. Click one to
see it on the canvas; accept it at any later time; delete it (after asking)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from glide_studio.app.controller import GalleryRun, StudioController
from glide_studio.png_metadata import a1111_text
from glide_studio.ui import thumbnails

THUMB = 72
ITEM_ROLE = Qt.ItemDataRole.UserRole
KEY_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ROLE = Qt.ItemDataRole.UserRole + 2


class GalleryPanel(QWidget):
    accept_requested = Signal(int, int)
    """(run, candidate)"""
    delete_requested = Signal(int, int)

    def __init__(self, controller: StudioController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
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
        controller.gallery_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Brings the list up to the controller's runs, touching only what changed: after a run, its new
        candidates are inserted and the others stay as they are (rebuilt, 80 candidates took 10 ms of the GUI
        thread as each run ended)."""
        runs = self.controller.runs
        wanted = [(id(runs[number]), number, candidate)
                  for number in reversed(range(len(runs))) for candidate in runs[number].kept()]
        keep = set(wanted)
        self.list.blockSignals(True)
        for row in reversed(range(self.list.count())):
            if self.list.item(row).data(KEY_ROLE) not in keep:
                self.list.takeItem(row)
        # What is left is in the wanted order already (runs only come and go, a run's candidates keep their order).
        for row, key in enumerate(wanted):
            item = self.list.item(row)
            if item is None or item.data(KEY_ROLE) != key:
                self.list.insertItem(row, self._item(runs[key[1]], key))
        self.list.blockSignals(False)
        self._sync_buttons()

    def _item(self, run: GalleryRun, key: tuple[int, int, int]) -> QListWidgetItem:
        _, number, candidate = key
        score = run.score(candidate)
        flag = "⚠ " if score is not None and score.missed else ""
        item = QListWidgetItem(thumbnails.thumbnail_icon(run.images[candidate], THUMB),
                               f"{flag}{run.mark}{number + 1}·{candidate + 1}")
        item.setData(ITEM_ROLE, (number, candidate))
        item.setData(KEY_ROLE, key)
        item.setData(RUN_ROLE, run)  # held, so that no other run takes its id while the item is shown
        height, width = run.images.shape[1:3]
        settings = a1111_text(run.record.for_candidate(candidate), (width, height)).replace(", ", "\n")
        item.setToolTip("\n\n".join(part for part in (run.lineage(), settings) if part))
        item.setSizeHint(QSize(THUMB + 16, THUMB + 26))
        return item

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
