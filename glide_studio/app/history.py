"""The edit history as a tree: each accepted edit is a node; editing from an older node starts a branch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, Signal

from glide_studio.app.images import thumbnail
from glide_studio.runs.record import RunRecord


@dataclass
class HistoryNode:
    id: int
    parent_id: int | None
    image: np.ndarray = field(repr=False)
    caption: str
    record: RunRecord | None = None
    """The run that made this node's picture (None for a picture that was opened, not generated)."""
    created: float = field(default_factory=time.time)
    thumbnail: np.ndarray = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.thumbnail is None:
            self.thumbnail = thumbnail(self.image)


class HistoryTree(QObject):
    node_added = Signal(int)
    current_changed = Signal(int)
    reset = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._nodes: dict[int, HistoryNode] = {}
        self._current: int | None = None
        self._next_id = 1

    def start(self, image: np.ndarray, caption: str) -> HistoryNode:
        """Forget everything and make `image` the root."""
        self._nodes.clear()
        self._next_id = 1
        node = self._make(None, image, caption, None)
        self._current = node.id
        self.reset.emit()
        return node

    def restore(self, nodes: list[HistoryNode], current_id: int) -> None:
        if not nodes or current_id not in {node.id for node in nodes}:
            raise ValueError("a history needs at least one node and a current node among them")
        self._nodes = {node.id: node for node in nodes}
        self._next_id = max(self._nodes) + 1
        self._current = current_id
        self.reset.emit()

    def add(self, image: np.ndarray, caption: str, record: RunRecord | None) -> HistoryNode:
        """A child of the current node, which becomes current (a branch if the current node has children)."""
        node = self._make(self._current, image, caption, record)
        self._current = node.id
        self.node_added.emit(node.id)
        self.current_changed.emit(node.id)
        return node

    def go_to(self, node_id: int) -> HistoryNode:
        if node_id not in self._nodes:
            raise KeyError(f"no history node {node_id}")
        if node_id != self._current:
            self._current = node_id
            self.current_changed.emit(node_id)
        return self._nodes[node_id]

    def _make(self, parent_id: int | None, image: np.ndarray, caption: str, record: RunRecord | None) -> HistoryNode:
        node = HistoryNode(self._next_id, parent_id, np.array(image, dtype=np.uint8, copy=True), caption, record)
        self._nodes[node.id] = node
        self._next_id += 1
        return node

    @property
    def current(self) -> HistoryNode | None:
        return self._nodes.get(self._current) if self._current is not None else None

    def node(self, node_id: int) -> HistoryNode:
        return self._nodes[node_id]

    def nodes(self) -> list[HistoryNode]:
        return [self._nodes[key] for key in sorted(self._nodes)]

    def children(self, node_id: int | None) -> list[HistoryNode]:
        return [node for node in self.nodes() if node.parent_id == node_id]

    def roots(self) -> list[HistoryNode]:
        return self.children(None)

    def path_to(self, node_id: int) -> list[HistoryNode]:
        path = []
        node = self._nodes.get(node_id)
        while node is not None:
            path.append(node)
            node = self._nodes.get(node.parent_id) if node.parent_id is not None else None
        return path[::-1]

    def __len__(self) -> int:
        return len(self._nodes)
