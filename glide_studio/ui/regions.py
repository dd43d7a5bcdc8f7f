"""GLIGEN regions on the canvas: boxes with phrases that a GLIGEN model draws into.

The regions are the next run's `Request.regions`, so they are journalled with the settings and recorded with every
run. `RegionsEditor` edits that list and keeps the selection; every change is an undo command on the document's stack,
like a stroke. For a model that is not a GLIGEN model the list stays (switching models loses nothing) but the tool is
disabled and the boxes hidden: GLIDE models do not read them, and a Stable Diffusion model without GLIGEN layers
refuses a run that has them, as the panel says.
`RegionsTool` is the canvas side: it draws the boxes with their phrases and turns drags into edits."""

from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen, QUndoCommand
from PySide6.QtWidgets import QGraphicsItem

from glide_studio.pipelines.request import MAX_REGIONS, Region
from glide_studio.sd.registry import grounds_regions
from glide_studio.ui.canvas import Tool

NEW_PHRASE = "an object"
"""What a new box says until the user types its phrase (the panel selects it for typing over)."""
MIN_SIDE = 4
PALETTE = ((255, 170, 60), (90, 200, 255), (140, 230, 120), (250, 110, 170), (200, 160, 255), (250, 230, 90))
HANDLE = 9.0


def colour_of(index: int) -> QColor:
    return QColor(*PALETTE[index % len(PALETTE)])


class RegionsCommand(QUndoCommand):
    """One edit of the region list: the list before and after, and which box is selected after each."""

    def __init__(self, editor: RegionsEditor, before: tuple[Region, ...], after: tuple[Region, ...], text: str,
                 selected_before: int | None, selected_after: int | None) -> None:
        super().__init__(text)
        self.editor, self.before, self.after = editor, before, after
        self.selected_before, self.selected_after = selected_before, selected_after

    def redo(self) -> None:
        self.editor.apply(self.after, self.selected_after)

    def undo(self) -> None:
        self.editor.apply(self.before, self.selected_before)


class RegionsEditor(QObject):
    changed = Signal()
    """The list, the selection or whether the model uses regions changed."""
    phrase_wanted = Signal(int)
    """A box was just drawn: its phrase is waiting to be typed."""

    def __init__(self, controller, undo_stack, parent=None) -> None:
        super().__init__(parent)
        self.controller, self.undo_stack = controller, undo_stack
        self.selected: int | None = None
        self.active = grounds_regions(controller.run_settings.request.base_model)
        controller.run_settings_changed.connect(self._on_settings)
        controller.run_settings_edited.connect(self._on_settings)

    @property
    def regions(self) -> tuple[Region, ...]:
        """The next run's regions: the run settings hold them (one place), so they are journalled and restored with
        every other setting."""
        return self.controller.run_settings.request.regions

    # -- edits (each one undoable) ----------------------------------------------------------------------------
    def _push(self, regions: tuple[Region, ...], text: str, selected: int | None) -> None:
        if regions != self.regions:
            self.undo_stack.push(RegionsCommand(self, self.regions, regions, text, self.selected, selected))
        else:
            self.select(selected)

    def add(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        if len(self.regions) >= MAX_REGIONS or x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
            return False
        self._push(self.regions + (Region(x0, y0, x1, y1, NEW_PHRASE),), "Add region", len(self.regions))
        self.phrase_wanted.emit(len(self.regions) - 1)
        return True

    def set_box(self, index: int, x0: int, y0: int, x1: int, y1: int, text: str = "Move region") -> None:
        if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
            return
        old = self.regions[index]
        self._replace(index, Region(x0, y0, x1, y1, old.phrase), text)

    def set_phrase(self, index: int, phrase: str) -> bool:
        """False (and nothing changes) for an empty phrase: every box must say what it shows."""
        phrase = " ".join(phrase.split())
        if not phrase or not 0 <= index < len(self.regions):
            return False
        old = self.regions[index]
        self._replace(index, Region(old.x0, old.y0, old.x1, old.y1, phrase), "Edit region phrase")
        return True

    def _replace(self, index: int, region: Region, text: str) -> None:
        regions = self.regions[:index] + (region,) + self.regions[index + 1:]
        self._push(regions, text, index)

    def delete(self, index: int) -> None:
        if 0 <= index < len(self.regions):
            after = self.regions[:index] + self.regions[index + 1:]
            self._push(after, "Delete region", min(index, len(after) - 1) if after else None)

    def clear(self) -> None:
        if self.regions:
            self._push((), "Clear regions", None)

    def select(self, index: int | None) -> None:
        """Selecting is not an edit: it changes nothing a run sees."""
        index = index if index is not None and 0 <= index < len(self.regions) else None
        if index != self.selected:
            self.selected = index
            self.changed.emit()

    # -- state ------------------------------------------------------------------------------------------------
    def apply(self, regions: tuple[Region, ...], selected: int | None) -> None:
        """The list as an undo command sets it, into the run settings."""
        self.selected = selected if selected is not None and 0 <= selected < len(regions) else None
        settings = self.controller.run_settings
        if settings.request.regions != tuple(regions):
            self.controller.set_run_settings(settings.with_request(regions=tuple(regions)), announce=True)
        self.changed.emit()

    def _on_settings(self, settings) -> None:
        self.active = grounds_regions(settings.request.base_model)
        if self.selected is not None and self.selected >= len(settings.request.regions):
            self.selected = None
        self.changed.emit()


class RegionsItem(QGraphicsItem):
    """The boxes and their phrases, over the picture (the selected one with a resize handle); `drag` is a box being
    drawn or moved, shown before it becomes an edit."""

    def __init__(self, editor: RegionsEditor) -> None:
        super().__init__()
        self.editor = editor
        self.editing = False
        """The Regions tool is chosen: boxes filled, the selected one with its handle. Otherwise only their dashed
        outlines and phrases show, so that a result under them can be seen."""
        self.picture = QRectF()
        self.drag: tuple[int | None, QRectF] | None = None
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(48)

    def _scale(self) -> float:
        views = self.scene().views() if self.scene() else []
        return max(views[0].transform().m11(), 1e-6) if views else 1.0

    def boundingRect(self) -> QRectF:
        margin = 40 / self._scale()
        return self.picture.adjusted(-margin, -margin, margin, margin)

    def set_picture(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self.picture = QRectF(rect)
        self.update()

    def rects(self) -> list[QRectF]:
        return [QRectF(region.x0, region.y0, region.x1 - region.x0, region.y1 - region.y0)
                for region in self.editor.regions]

    def handle_rect(self, rect: QRectF) -> QRectF:
        size = HANDLE / self._scale()
        return QRectF(rect.bottomRight() - QPointF(size, size), rect.bottomRight() + QPointF(size, size))

    def paint(self, painter: QPainter, option, widget=None) -> None:
        scale = self._scale()
        font = QFont(painter.font())
        font.setPixelSize(max(1, round(12 / scale)))
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        rects = self.rects()
        if self.drag is not None:
            index, rect = self.drag
            if index is None:
                rects.append(rect)
            else:
                rects[index] = rect
        for index, rect in enumerate(rects):
            colour = colour_of(index)
            dragged = self.drag is not None and self.drag[0] == index
            chosen = self.editing and (index == self.editor.selected or dragged)
            pen = QPen(colour, 2.5 if chosen else 1.5, Qt.PenStyle.SolidLine if self.editing else Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            fill = QColor(colour)
            fill.setAlpha(45 if chosen else 25 if self.editing else 0)
            painter.setBrush(fill)
            painter.drawRect(rect)
            phrase = self.editor.regions[index].phrase if index < len(self.editor.regions) else NEW_PHRASE
            text = metrics.elidedText(f"{index + 1} · {phrase}", Qt.TextElideMode.ElideRight,
                                      max(rect.width(), 60 / scale))
            label = QRectF(rect.left(), rect.top() - metrics.height() - 2 / scale, metrics.horizontalAdvance(text)
                           + 8 / scale, metrics.height() + 2 / scale)
            if label.top() < self.picture.top():
                label.moveTop(rect.top())
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(colour.red(), colour.green(), colour.blue(), 220))
            painter.drawRect(label)
            painter.setPen(QColor(20, 20, 20))
            painter.drawText(label.adjusted(4 / scale, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, text)
            if chosen:
                painter.setPen(QPen(QColor(20, 20, 20), 0))
                painter.setBrush(colour)
                painter.drawRect(self.handle_rect(rect))


class RegionsTool:
    """The canvas's Regions tool: drag on empty picture to draw a box, drag a box to move it, drag the selected
    box's corner handle to resize it; Delete removes the selected box."""

    def __init__(self, canvas, editor: RegionsEditor) -> None:
        self.canvas, self.editor = canvas, editor
        self.item = RegionsItem(editor)
        canvas.scene().addItem(self.item)
        self._drag: tuple[str, int | None, QPointF, QRectF] | None = None
        editor.changed.connect(self.refresh)
        canvas.document.picture_changed.connect(self.refresh)
        canvas.regions_tool = self
        self.refresh()

    def refresh(self) -> None:
        self.item.editing = self.canvas.tool == Tool.REGIONS
        self.item.set_picture(QRectF(0, 0, self.canvas.document.width, self.canvas.document.height))
        self.item.setVisible(self.editor.active and bool(self.editor.regions or self._drag))

    def _hit(self, point: QPointF) -> tuple[str, int] | None:
        rects = self.item.rects()
        selected = self.editor.selected
        if selected is not None and self.item.handle_rect(rects[selected]).contains(point):
            return "resize", selected
        for index in reversed(range(len(rects))):  # the last drawn is on top
            if rects[index].contains(point):
                return "move", index
        return None

    def press(self, point: QPointF) -> None:
        if not self.editor.active:
            return
        hit = self._hit(point)
        if hit is None:
            self.editor.select(None)
            self._drag = ("draw", None, point, QRectF(point, point))
        else:
            kind, index = hit
            self.editor.select(index)
            self._drag = (kind, index, point, self.item.rects()[index])
        self.item.drag = (self._drag[1], self._drag[3])
        self.refresh()

    def _clamped(self, rect: QRectF) -> QRectF:
        return rect.normalized().intersected(self.item.picture)

    def move(self, point: QPointF) -> None:
        if self._drag is None:
            return
        kind, index, origin, start = self._drag
        if kind == "draw":
            rect = QRectF(origin, point)
        elif kind == "move":
            delta = point - origin
            picture = self.item.picture
            delta.setX(min(max(delta.x(), picture.left() - start.left()), picture.right() - start.right()))
            delta.setY(min(max(delta.y(), picture.top() - start.top()), picture.bottom() - start.bottom()))
            rect = start.translated(delta)
        else:
            rect = QRectF(start.topLeft(), start.bottomRight() + (point - origin))
        self.item.drag = (index, self._clamped(rect))
        self.item.update()

    def release(self, point: QPointF) -> None:
        if self._drag is None:
            return
        self.move(point)
        kind, index, _origin, _start = self._drag
        rect = self.item.drag[1]
        self._drag, self.item.drag = None, None
        corners = (round(rect.left()), round(rect.top()), round(rect.right()), round(rect.bottom()))
        if kind == "draw":
            self.editor.add(*corners)
        elif corners != tuple(getattr(self.editor.regions[index], name) for name in ("x0", "y0", "x1", "y1")):
            self.editor.set_box(index, *corners, text="Move region" if kind == "move" else "Resize region")
        self.refresh()

    def delete_selected(self) -> bool:
        if self.editor.selected is None or not self.editor.active:
            return False
        self.editor.delete(self.editor.selected)
        return True
