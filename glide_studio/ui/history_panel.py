"""The history panel: accepted edits as a tree with thumbnails; click a node to go back to it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from glide_studio.app.history import HistoryTree
from glide_studio.app.images import array_to_qimage
from glide_studio.png_metadata import a1111_text

NODE_ROLE = Qt.ItemDataRole.UserRole


def describe(node) -> str:
    """The run that made the node, as the A1111 text its exported PNG carries (settings wrapped per line)."""
    if node.record is None:
        return node.caption
    height, width = node.image.shape[:2]
    return a1111_text(node.record, (width, height)).replace(", ", "\n")


class HistoryPanel(QWidget):
    node_clicked = Signal(int)

    def __init__(self, history: HistoryTree, parent=None) -> None:
        super().__init__(parent)
        self.history = history
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(48, 48))
        self.tree.setIndentation(14)
        self.tree.setUniformRowHeights(False)
        layout.addWidget(self.tree)
        self._items: dict[int, QTreeWidgetItem] = {}
        self.tree.itemClicked.connect(lambda item, _column: self.node_clicked.emit(int(item.data(0, NODE_ROLE))))
        history.reset.connect(self.rebuild)
        history.node_added.connect(self._add_node)
        history.current_changed.connect(self._mark_current)
        self.rebuild()

    def rebuild(self) -> None:
        self.tree.clear()
        self._items.clear()
        for node in self.history.nodes():
            self._add_node(node.id)
        if self.history.current is not None:
            self._mark_current(self.history.current.id)

    def item_for(self, node_id: int) -> QTreeWidgetItem:
        return self._items[node_id]

    def _add_node(self, node_id: int) -> None:
        node = self.history.node(node_id)
        item = QTreeWidgetItem([node.caption or "(no caption)"])
        pixmap = QPixmap.fromImage(array_to_qimage(node.thumbnail))
        icon = QIcon(pixmap)
        icon.addPixmap(pixmap, QIcon.Mode.Selected)  # no highlight tint over the picture
        item.setIcon(0, icon)
        item.setData(0, NODE_ROLE, node.id)
        item.setToolTip(0, describe(node))
        parent = self._items.get(node.parent_id) if node.parent_id is not None else None
        if parent is None:
            self.tree.addTopLevelItem(item)
        else:
            parent.addChild(item)
            parent.setExpanded(True)
        self._items[node.id] = item

    def _mark_current(self, node_id: int) -> None:
        for key, item in self._items.items():
            font = QFont(item.font(0))
            font.setBold(key == node_id)
            item.setFont(0, font)
        if node_id in self._items:
            self.tree.setCurrentItem(self._items[node_id])
