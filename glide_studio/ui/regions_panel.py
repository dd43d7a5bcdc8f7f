"""The Regions panel: the boxes listed with their phrases, a phrase editor for the selected one, delete and clear.
Greyed out, with a line saying why, while the model is not a GLIGEN model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from glide_studio.pipelines.request import MAX_REGIONS, Family
from glide_studio.ui.regions import RegionsEditor, colour_of

HINT_ACTIVE = "Regions tool (G): drag on the picture to draw a box, then say what it shows."
HINT_INACTIVE = ("Boxes with phrases need a GLIGEN model (SD · gligen-generation or gligen-inpainting in the Model "
                 "picker); this model does not read them, and they are kept for when one is picked.")
HINT_REFUSED = ("This Stable Diffusion model is not a GLIGEN model: a run with it refuses boxes. Pick a GLIGEN model "
                "(SD · gligen-generation or gligen-inpainting) or clear them.")


def _swatch(index: int) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(colour_of(index))
    return QIcon(pixmap)


class RegionsPanel(QWidget):
    def __init__(self, editor: RegionsEditor, parent=None) -> None:
        super().__init__(parent)
        self.editor = editor
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setObjectName("hintLabel")
        self.list = QListWidget()
        self.list.setToolTip(f"GLIGEN regions (at most {MAX_REGIONS}): each box is drawn as its phrase says")
        self.phrase = QLineEdit()
        self.phrase.setPlaceholderText("what the selected box shows, e.g. a red ball")
        self.delete_button = QPushButton("Delete")
        self.clear_button = QPushButton("Clear all")
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        for widget in (self.hint, self.list, self.phrase):
            layout.addWidget(widget)
        layout.addLayout(buttons)

        self.list.currentRowChanged.connect(lambda row: editor.select(row if row >= 0 else None))
        self.phrase.editingFinished.connect(self._commit_phrase)
        self.delete_button.clicked.connect(lambda: editor.delete(editor.selected))
        self.clear_button.clicked.connect(editor.clear)
        editor.changed.connect(self.refresh)
        editor.phrase_wanted.connect(self._ask_phrase)
        self.refresh()

    def refresh(self) -> None:
        editor = self.editor
        refused = not editor.active and editor.regions and editor.controller.run_settings.request.family is Family.SD
        self.hint.setText(HINT_ACTIVE if editor.active else HINT_REFUSED if refused else HINT_INACTIVE)
        self.list.blockSignals(True)
        self.list.clear()
        for index, region in enumerate(editor.regions):
            item = QListWidgetItem(_swatch(index), f"{index + 1}. {region.phrase}   "
                                   f"({region.x0},{region.y0}–{region.x1},{region.y1})")
            item.setToolTip(f"--region \"{region.x0},{region.y0},{region.x1},{region.y1}={region.phrase}\"")
            self.list.addItem(item)
        self.list.setCurrentRow(-1 if editor.selected is None else editor.selected)
        self.list.blockSignals(False)
        chosen = editor.selected is not None
        if not self.phrase.hasFocus() or not chosen:
            self.phrase.setText(editor.regions[editor.selected].phrase if chosen else "")
        self.list.setEnabled(editor.active and bool(editor.regions))
        self.clear_button.setEnabled(bool(editor.regions))  # also where a run would refuse them
        self.phrase.setEnabled(editor.active and chosen)
        self.delete_button.setEnabled(editor.active and chosen)

    def _commit_phrase(self) -> None:
        index = self.editor.selected
        if index is None:
            return
        if not self.editor.set_phrase(index, self.phrase.text()):
            self.phrase.setText(self.editor.regions[index].phrase)  # every box says something: keep the old one

    def _ask_phrase(self, index: int) -> None:
        self.refresh()
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None:  # a tab behind History: bring it to the front, where the phrase is typed
            dock.show()
            dock.raise_()
        self.phrase.setFocus(Qt.FocusReason.OtherFocusReason)
        self.phrase.selectAll()
