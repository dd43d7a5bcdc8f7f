"""Scene items for the canvas (layers drawn from the document's QImages, the edit box) and stroke undo."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QUndoCommand
from PySide6.QtWidgets import QGraphicsItem

from glide_studio.app.document import Document

HANDLE = 10.0


class LayerItem(QGraphicsItem):
    """Draws one of the document's paint layers (by name) so strokes show without pixmap conversion. A blank layer
    (the sketch and lock layers, mostly) is not drawn: each layer drawn is a blit of the whole view, half of the
    canvas's paint of a run's preview when two layers were blank."""

    def __init__(self, document: Document, layer: str, opacity: float = 1.0) -> None:
        super().__init__()
        self.document = document
        self.layer = layer
        self.setOpacity(opacity)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._blank, self._blank_for, self._stroked = False, None, False

    def image(self) -> QImage:
        return getattr(self.document, self.layer)

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.document.width, self.document.height)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.is_blank():
            return
        exposed = option.exposedRect if option is not None else self.boundingRect()
        painter.drawImage(exposed, self.image(), exposed)

    def stroked(self, rect: QRectF) -> None:
        """A brush painted inside `rect`: the layer is not blank now (an eraser's may be; drawing it costs a blit),
        which spares a scan of the whole layer at each paint of a stroke."""
        self._stroked = True
        self.update(rect)

    def is_blank(self) -> bool:
        """Whether every pixel is transparent, as of the layer's current contents (QImage.cacheKey changes with
        every change to them)."""
        image = self.image()
        if image.cacheKey() != self._blank_for:
            self._blank = not self._stroked and not np.frombuffer(image.constBits(), np.uint8).any()
            self._blank_for, self._stroked = image.cacheKey(), False
        return self._blank

    def sync_geometry(self) -> None:
        self.prepareGeometryChange()
        self.update()


def surround_bands(picture: QRectF, box: QRectF) -> list[QRectF]:
    """The part of the picture outside the box as at most four rectangles (above, below, left, right), which the
    canvas dims at every paint: filled as a subtracted path, it took a millisecond each time."""
    inner = box.intersected(picture)
    if inner.isEmpty():
        return [QRectF(picture)] if not picture.isEmpty() else []
    bands = (QRectF(picture.left(), picture.top(), picture.width(), inner.top() - picture.top()),
             QRectF(picture.left(), inner.bottom(), picture.width(), picture.bottom() - inner.bottom()),
             QRectF(picture.left(), inner.top(), inner.left() - picture.left(), inner.height()),
             QRectF(inner.right(), inner.top(), picture.right() - inner.right(), inner.height()))
    return [band for band in bands if band.width() > 0 and band.height() > 0]


class EditBoxItem(QGraphicsItem):
    """The square the model sees: dashed outline, a dimmed surround and a resize handle."""

    def __init__(self) -> None:
        super().__init__()
        self.rect = QRectF()
        self.picture = QRectF()
        self.automatic = False
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(50)

    def set_geometry(self, rect: QRectF, picture: QRectF, automatic: bool = False) -> None:
        self.prepareGeometryChange()
        self.rect, self.picture = QRectF(rect), QRectF(picture)
        self.automatic = automatic
        self.update()

    def label(self) -> str:
        """Its size in picture pixels, and whether it follows the mask by itself."""
        size = f"{round(self.rect.width())} × {round(self.rect.height())}"
        return f"{size} · automatic" if self.automatic else size

    def handle_rect(self) -> QRectF:
        size = HANDLE / max(self._scale(), 1e-6)
        return QRectF(self.rect.bottomRight() - QPointF(size, size), self.rect.bottomRight() + QPointF(size, size))

    def _scale(self) -> float:
        views = self.scene().views() if self.scene() else []
        return views[0].transform().m11() if views else 1.0

    def boundingRect(self) -> QRectF:
        margin = 2 * HANDLE / max(self._scale(), 1e-6)
        return self.picture.united(self.rect).adjusted(-margin, -margin, margin, margin)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.rect.isEmpty():
            return
        dim = QColor(0, 0, 0, 90)
        for band in surround_bands(self.picture, self.rect):
            painter.fillRect(band, dim)
        pen = QPen(QColor(255, 255, 255, 220), 0, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(self.rect)
        painter.setPen(QPen(QColor(20, 20, 20), 0))
        painter.setBrush(QBrush(QColor(90, 160, 255)))
        painter.drawRect(self.handle_rect())
        scale = max(self._scale(), 1e-6)
        font = QFont(painter.font())
        font.setPixelSize(max(1, round(12 / scale)))  # 12 screen pixels at any zoom
        painter.setFont(font)
        painter.setPen(QColor(255, 255, 255, 230))
        painter.drawText(self.rect.topLeft() + QPointF(4 / scale, 16 / scale), self.label())


class StrokeCommand(QUndoCommand):
    """One finished stroke on a layer: the layer's pixels before and after it inside the rectangle it touched
    (`rect` None: the whole layer), so that undo and redo copy, and tell the journal, only what changed."""

    def __init__(self, document: Document, layer: str, before: QImage, after: QImage, text: str,
                 rect: QRect | None = None) -> None:
        super().__init__(text)
        self.document, self.layer = document, layer
        self.rect = QRect(0, 0, before.width(), before.height()) if rect is None else QRect(rect)
        self.before, self.after = before.copy(self.rect), after.copy(self.rect)
        self._first = True

    def _apply(self, patch: QImage, what: str) -> None:
        painter = QPainter(getattr(self.document, self.layer))
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(self.rect.topLeft(), patch)
        painter.end()
        self.document.commit_layer(self.layer, self.rect, {"what": what})

    def redo(self) -> None:
        if self._first:
            self._first = False  # the stroke is already on the layer, and in the journal
            return
        self._apply(self.after, f"Redo {self.text().lower()}")

    def undo(self) -> None:
        self._apply(self.before, f"Undo {self.text().lower()}")


class LayerSnapshotCommand(StrokeCommand):
    """Clear / invert mask: undoable whole-layer changes that the app made, not the pointer."""

    def __init__(self, document: Document, layer: str, before: QImage, text: str) -> None:
        super().__init__(document, layer, before, getattr(document, layer), text)
