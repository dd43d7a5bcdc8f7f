"""The canvas: picture, translucent mask and sketch layers, painting tools, zoom/pan, the edit box."""

from __future__ import annotations

from enum import Enum

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from glide_studio.app.document import LOCK_COLOUR, MASK_COLOUR, Document
from glide_studio.app.images import array_to_qimage
from glide_studio.pipelines.request import EditBox
from glide_studio.ui.canvas_items import EditBoxItem, LayerItem, LayerSnapshotCommand, StrokeCommand


class Tool(str, Enum):
    MASK = "mask"
    ERASER = "eraser"
    SKETCH = "sketch"
    LOCK = "lock"
    BOX = "box"
    REGIONS = "regions"


TOOL_LAYER = {Tool.MASK: "mask", Tool.ERASER: "mask", Tool.SKETCH: "sketch", Tool.LOCK: "lock"}
MIN_BRUSH, MAX_BRUSH = 2, 256


class Canvas(QGraphicsView):
    files_dropped = Signal(list)
    image_dropped = Signal(object)
    """A QImage dropped as data (no file behind it)."""
    brush_size_changed = Signal(int)
    zoom_changed = Signal(float)
    compare_held = Signal(bool)
    """The before/after key (backslash) went down (True) or up: show the picture without the candidate."""

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.undo_stack = document.undo_stack
        self.tool = Tool.MASK
        self.brush_size = 24
        self.sketch_colour = QColor(220, 60, 50)
        self.preview_frames = 0
        self._stroke_before: QImage | None = None
        self._last_point: QPointF | None = None
        self._pan_from = None
        self._space_held = False
        self._box_drag: tuple[str, QPointF, QRectF] | None = None
        self._showing_override = False
        self.regions_tool = None
        """The Regions tool (ui.regions.RegionsTool), which the window attaches: it owns its boxes' drags."""

        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setBackgroundBrush(QColor(30, 30, 33))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.picture_item = QGraphicsPixmapItem()
        self.picture_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.mask_item = LayerItem(document, "mask", 0.5)
        self.sketch_item = LayerItem(document, "sketch", 1.0)
        self.lock_item = LayerItem(document, "lock", 0.45)
        self.preview_item = QGraphicsPixmapItem()
        self.preview_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.preview_item.setZValue(40)
        self.preview_item.hide()
        self.box_item = EditBoxItem()
        self.cursor_item = QGraphicsEllipseItem()
        pen = QPen(QColor(255, 255, 255, 200), 0)
        pen.setCosmetic(True)
        self.cursor_item.setPen(pen)
        self.cursor_item.setZValue(100)
        self.cursor_item.hide()
        for z, item in enumerate((self.picture_item, self.sketch_item, self.mask_item, self.lock_item)):
            item.setZValue(z)
            self.scene().addItem(item)
        self.lock_item.setZValue(45)  # locking is done on the paused run's preview, so it shows above it
        for item in (self.preview_item, self.box_item, self.cursor_item):
            self.scene().addItem(item)

        document.picture_changed.connect(self._on_picture_changed)
        document.layers_changed.connect(self._on_layers_changed)
        document.edit_box_changed.connect(self._sync_box)
        self._on_picture_changed()
        self._sync_box()

    # --- document sync ----------------------------------------------------------------------------
    def _on_picture_changed(self) -> None:
        size_changed = self.scene().sceneRect().size().toSize() != self._picture_rect().size().toSize()
        if not self._showing_override:
            self.picture_item.setPixmap(QPixmap.fromImage(self.document.picture_qimage()))
        self.mask_item.sync_geometry()
        self.sketch_item.sync_geometry()
        self.lock_item.sync_geometry()
        self.scene().setSceneRect(self._picture_rect())
        self._sync_box()
        if size_changed:
            self.undo_stack.clear()
            self.fit()

    def _on_layers_changed(self) -> None:
        self.mask_item.update()
        self.sketch_item.update()
        self.lock_item.update()

    def _picture_rect(self) -> QRectF:
        return QRectF(0, 0, self.document.width, self.document.height)

    def _sync_box(self) -> None:
        box = self.document.edit_box
        self.box_item.set_geometry(QRectF(box.x, box.y, box.width, box.height), self._picture_rect(),
                                   self.document.box_is_automatic)

    # --- what the canvas shows --------------------------------------------------------------------
    def show_image(self, image: np.ndarray | None) -> None:
        """Shows a candidate instead of the document's picture; None goes back to the picture."""
        self._showing_override = image is not None
        shown = self.document.picture if image is None else image
        self.picture_item.setPixmap(QPixmap.fromImage(array_to_qimage(shown)))
        self.mask_item.setVisible(image is None)
        self.sketch_item.setVisible(image is None)
        self.lock_item.setVisible(image is None)

    def set_preview(self, image: np.ndarray | None, only_in_mask: bool = False) -> None:
        """A denoising preview (h, w, 3) stretched over the edit box, or None to hide it.

        With only_in_mask, the preview shows through the mask only, so the kept pixels stay sharp around it.
        """
        if image is None:
            self.preview_item.hide()
            self._preview_alpha = None
            return
        if only_in_mask:
            image = np.dstack([image, self._preview_alpha_for(image.shape[:2])])
        pixmap = QPixmap.fromImage(array_to_qimage(image))
        box = self.document.edit_box
        self.preview_item.setPixmap(pixmap)
        self.preview_item.setPos(box.x, box.y)
        self.preview_item.setTransform(
            self.preview_item.transform().fromScale(box.width / pixmap.width(), box.height / pixmap.height())
        )
        self.preview_item.show()
        self.preview_frames += 1

    def _preview_alpha_for(self, size: tuple[int, int]) -> np.ndarray:
        cached = getattr(self, "_preview_alpha", None)
        if cached is not None and cached.shape == size:
            return cached
        box = self.document.edit_box
        mask = self.document.mask_array()[box.y : box.y + box.height, box.x : box.x + box.width]
        rows = (np.arange(size[0]) * mask.shape[0] // size[0]).clip(0, mask.shape[0] - 1)
        columns = (np.arange(size[1]) * mask.shape[1] // size[1]).clip(0, mask.shape[1] - 1)
        self._preview_alpha = np.ascontiguousarray(mask[rows][:, columns])
        return self._preview_alpha

    # --- view -------------------------------------------------------------------------------------
    def fit(self) -> None:
        self.fitInView(self._picture_rect().adjusted(-8, -8, 8, 8), Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom)

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        new_zoom = min(max(self.zoom * factor, 0.05), 64.0)
        factor = new_zoom / self.zoom
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom)
        self._update_cursor_item()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.15**steps)
        event.accept()

    # --- tools ------------------------------------------------------------------------------------
    def set_tool(self, tool: Tool) -> None:
        self.tool = Tool(tool)
        self._update_cursor_item()
        if self.regions_tool is not None:
            self.regions_tool.refresh()  # the boxes are drawn in full only while they are being edited

    def set_brush_size(self, size: int) -> None:
        size = int(min(max(size, MIN_BRUSH), MAX_BRUSH))
        if size != self.brush_size:
            self.brush_size = size
            self.brush_size_changed.emit(size)
            self._update_cursor_item()

    def smaller_brush(self) -> None:
        self.set_brush_size(round(self.brush_size / 1.25))

    def larger_brush(self) -> None:
        self.set_brush_size(round(self.brush_size * 1.25) + 1)

    def set_sketch_colour(self, colour: QColor) -> None:
        self.sketch_colour = QColor(colour)

    def clear_mask(self) -> None:
        before = self.document.mask.copy()
        self.document.clear_mask()
        self.undo_stack.push(LayerSnapshotCommand(self.document, "mask", before, "Clear mask"))

    def invert_mask(self) -> None:
        before = self.document.mask.copy()
        self.document.invert_mask()
        self.undo_stack.push(LayerSnapshotCommand(self.document, "mask", before, "Invert mask"))

    def clear_sketch(self) -> None:
        before = self.document.sketch.copy()
        self.document.clear_sketch()
        self.undo_stack.push(LayerSnapshotCommand(self.document, "sketch", before, "Clear sketch"))

    # --- painting ---------------------------------------------------------------------------------
    def _paint_segment(self, start: QPointF, end: QPointF) -> None:
        layer_name = TOOL_LAYER[self.tool]
        image = getattr(self.document, layer_name)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        colour = {Tool.SKETCH: self.sketch_colour, Tool.LOCK: LOCK_COLOUR}.get(self.tool, MASK_COLOUR)
        if self.tool == Tool.ERASER:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        pen = QPen(colour, self.brush_size, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        if start == end:
            painter.setBrush(colour)
            painter.setPen(Qt.PenStyle.NoPen)
            radius = self.brush_size / 2
            painter.drawEllipse(start, radius, radius)
        else:
            painter.drawLine(start, end)
        painter.end()
        margin = self.brush_size / 2 + 2
        dirty = QRectF(start, end).normalized().adjusted(-margin, -margin, margin, margin)
        {"sketch": self.sketch_item, "mask": self.mask_item, "lock": self.lock_item}[layer_name].stroked(dirty)
        self._stroke_rect = self._stroke_rect.united(dirty.toAlignedRect())
        self._stroke_points.append((round(end.x(), 2), round(end.y(), 2)))

    def _begin_stroke(self, point: QPointF) -> None:
        self._stroke_before = getattr(self.document, TOOL_LAYER[self.tool]).copy()
        self._stroke_rect, self._stroke_points = QRect(), []
        self._last_point = point
        self._paint_segment(point, point)

    def _end_stroke(self) -> None:
        layer_name = TOOL_LAYER[self.tool]
        after = getattr(self.document, layer_name)
        names = {Tool.MASK: "Mask stroke", Tool.ERASER: "Erase mask", Tool.SKETCH: "Sketch stroke",
                 Tool.LOCK: "Lock stroke"}
        rect = self._stroke_rect
        self.undo_stack.push(StrokeCommand(self.document, layer_name, self._stroke_before, after, names[self.tool],
                                           rect))
        self._stroke_before = None
        self._last_point = None
        detail = {"what": names[self.tool], "tool": self.tool.value, "size": self.brush_size,
                  "points": self._stroke_points}
        if self.tool == Tool.SKETCH:
            detail["colour"] = self.sketch_colour.name()
        self.document.commit_layer(layer_name, rect, detail)

    # --- mouse ------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_held):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if button != Qt.MouseButton.LeftButton or self._showing_override:
            return
        point = self.mapToScene(event.position().toPoint())
        if self.tool == Tool.BOX:
            self._begin_box_drag(QPointF(point))
        elif self.tool == Tool.REGIONS:
            if self.regions_tool is not None:
                self.regions_tool.press(QPointF(point))
        else:
            self._begin_stroke(QPointF(point))
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        point = QPointF(self.mapToScene(event.position().toPoint()))
        self._cursor_scene_pos = point
        self._update_cursor_item()
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
        elif self._box_drag is not None:
            self._drag_box(point)
        elif self.tool == Tool.REGIONS and self.regions_tool is not None:
            self.regions_tool.move(point)
        elif self._last_point is not None:
            self._paint_segment(self._last_point, point)
            self._last_point = point
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
        elif self._box_drag is not None:
            self._box_drag = None
        elif self.tool == Tool.REGIONS and self.regions_tool is not None:
            self.regions_tool.release(QPointF(self.mapToScene(event.position().toPoint())))
        elif self._last_point is not None:
            self._end_stroke()
        event.accept()

    def leaveEvent(self, event) -> None:
        self.cursor_item.hide()
        super().leaveEvent(event)

    def _update_cursor_item(self) -> None:
        point = getattr(self, "_cursor_scene_pos", None)
        if point is None or self.tool in (Tool.BOX, Tool.REGIONS):
            self.cursor_item.hide()
            return
        radius = self.brush_size / 2
        self.cursor_item.setRect(QRectF(point.x() - radius, point.y() - radius, 2 * radius, 2 * radius))
        self.cursor_item.show()

    # --- edit box dragging ------------------------------------------------------------------------
    def _begin_box_drag(self, point: QPointF) -> None:
        rect = QRectF(self.box_item.rect)
        if self.box_item.handle_rect().contains(point):
            self._box_drag = ("resize", point, rect)
        elif rect.contains(point):
            self._box_drag = ("move", point, rect)
        else:
            side = rect.width()
            self._box_drag = ("move", point, rect)
            self._set_box(QRectF(point.x() - side / 2, point.y() - side / 2, side, side))
            self._box_drag = ("move", point, QRectF(self.box_item.rect))

    def _drag_box(self, point: QPointF) -> None:
        kind, origin, start = self._box_drag
        delta = point - origin
        if kind == "move":
            self._set_box(start.translated(delta))
        else:
            side = max(16.0, max(start.width() + delta.x(), start.height() + delta.y()))
            self._set_box(QRectF(start.x(), start.y(), side, side))

    def _set_box(self, rect: QRectF) -> None:
        self.document.set_edit_box(EditBox(round(rect.x()), round(rect.y()), round(rect.width()), round(rect.height())))

    # --- keys -------------------------------------------------------------------------------------
    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key == Qt.Key.Key_BracketLeft:
            self.smaller_brush()
        elif key == Qt.Key.Key_BracketRight:
            self.larger_brush()
        elif key == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.compare_held.emit(True)
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self._delete_selected_region():
            return
        else:
            super().keyPressEvent(event)

    def _delete_selected_region(self) -> bool:
        return self.tool == Tool.REGIONS and self.regions_tool is not None and self.regions_tool.delete_selected()

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Backslash and not event.isAutoRepeat():
            self.compare_held.emit(False)
        elif event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self.viewport().unsetCursor()
        else:
            super().keyReleaseEvent(event)

    # --- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        data = event.mimeData()
        paths = [url.toLocalFile() for url in data.urls() if url.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths)
            event.acceptProposedAction()
        elif data.hasImage():  # a picture dragged out of a browser or another editor: pixels, no file
            image = data.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_dropped.emit(image)
                event.acceptProposedAction()
