"""Tool and action icons drawn with QPainter, so the app ships no image files."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

INK = QColor(222, 222, 226)
ACCENT = QColor(90, 160, 255)
MASK = QColor(255, 64, 96)


SIZES = (16, 20, 24, 32, 36, 40, 48, 64, 72, 96)
"""Pixel sizes each icon is drawn at: every size a 16-32 px icon takes at 100-300 % display scaling; Qt scales
from the nearest larger one in between."""
WINDOW_SIZES = (*SIZES, 128, 256)
"""The app's icon also at the sizes a window system shows (the dock, the task switcher)."""


def _drawn(draw: Callable[[QPainter], None], side: int, mode: QIcon.Mode) -> QPixmap:
    pixmap = QPixmap(side, side)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if mode == QIcon.Mode.Disabled:
        painter.setOpacity(0.4)
    painter.scale(side / 24, side / 24)
    draw(painter)
    painter.end()
    return pixmap


def _icon(draw: Callable[[QPainter], None], sizes: tuple[int, ...] = SIZES) -> QIcon:
    """Drawn once at every size in `sizes`, so it is crisp on any screen, and painted by Qt alone: an icon engine
    in Python ran at each paint of its button, waiting for the GIL while a run's worker held it."""
    icon = QIcon()
    for side in sizes:
        for mode in (QIcon.Mode.Normal, QIcon.Mode.Disabled):
            icon.addPixmap(_drawn(draw, side, mode), mode)
    return icon


def _pen(colour: QColor = INK, width: float = 1.8) -> QPen:
    return QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)


def _brush_shape(painter: QPainter, tip: QColor) -> None:
    painter.setPen(_pen())
    painter.drawLine(QPointF(19, 4), QPointF(10, 13))
    painter.setBrush(tip)
    painter.setPen(Qt.PenStyle.NoPen)
    path = QPainterPath(QPointF(10, 12))
    path.cubicTo(QPointF(5, 12), QPointF(6, 18), QPointF(3, 20))
    path.cubicTo(QPointF(9, 21), QPointF(13, 18), QPointF(12, 14))
    path.closeSubpath()
    painter.drawPath(path)


def mask_brush() -> QIcon:
    return _icon(lambda p: _brush_shape(p, MASK))


def lock_brush() -> QIcon:
    return _icon(lambda p: _brush_shape(p, QColor(70, 220, 120)))


def sketch_brush() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        for index, colour in enumerate((QColor(230, 70, 60), QColor(250, 190, 40), QColor(70, 130, 230))):
            p.setBrush(colour)
            p.drawEllipse(QPointF(5 + 4.5 * index, 19 - 1.5 * index), 2.6, 2.6)
        p.setPen(_pen())
        p.drawLine(QPointF(20, 3), QPointF(12, 11))
        p.drawPolyline(QPolygonF([QPointF(12, 11), QPointF(10, 15), QPointF(14, 13)]))

    return _icon(draw)


def eraser() -> QIcon:
    def draw(p: QPainter) -> None:
        p.translate(12, 12)
        p.rotate(-40)
        p.setPen(_pen())
        p.setBrush(QColor(240, 160, 170))
        p.drawRoundedRect(QRectF(-8, -4.5, 16, 9), 2, 2)
        p.setBrush(INK)
        p.drawRoundedRect(QRectF(-8, -4.5, 6, 9), 2, 2)

    return _icon(draw)


def edit_box() -> QIcon:
    def draw(p: QPainter) -> None:
        pen = _pen(INK, 1.6)
        pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawRect(QRectF(4, 4, 14, 14))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(ACCENT)
        p.drawRect(QRectF(15.5, 15.5, 5, 5))

    return _icon(draw)


def regions() -> QIcon:
    """Two boxes, each with a phrase's line of text."""
    def draw(p: QPainter) -> None:
        p.setPen(_pen(INK, 1.6))
        p.drawRect(QRectF(3, 5, 11, 9))
        p.setPen(_pen(ACCENT, 1.6))
        p.drawRect(QRectF(10, 11, 11, 9))
        p.drawLine(QPointF(12.5, 14), QPointF(18.5, 14))

    return _icon(draw)


def clear_mask() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(_pen(MASK))
        p.drawRoundedRect(QRectF(4, 4, 16, 16), 3, 3)
        p.setPen(_pen(INK, 2))
        p.drawLine(QPointF(8, 8), QPointF(16, 16))
        p.drawLine(QPointF(16, 8), QPointF(8, 16))

    return _icon(draw)


def invert_mask() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(_pen())
        p.drawRoundedRect(QRectF(4, 4, 16, 16), 3, 3)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(MASK)
        p.drawPie(QRectF(6, 6, 12, 12), 90 * 16, 180 * 16)

    return _icon(draw)


def fit_view() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(_pen())
        for x, y, dx, dy in ((4, 4, 1, 1), (20, 4, -1, 1), (4, 20, 1, -1), (20, 20, -1, -1)):
            p.drawPolyline(QPolygonF([QPointF(x, y + 5 * dy), QPointF(x, y), QPointF(x + 5 * dx, y)]))

    return _icon(draw)


def run() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(255, 255, 255))
        p.drawPolygon(QPolygonF([QPointF(7, 4), QPointF(20, 12), QPointF(7, 20)]))

    return _icon(draw)


def stop() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(INK)
        p.drawRoundedRect(QRectF(6, 6, 12, 12), 2, 2)

    return _icon(draw)


def app_icon() -> QIcon:
    def draw(p: QPainter) -> None:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(40, 44, 56))
        p.drawRoundedRect(QRectF(1, 1, 22, 22), 5, 5)
        p.setBrush(QColor(214, 52, 48))
        p.drawEllipse(QPointF(9, 9), 4.5, 4.5)
        p.setBrush(QColor(46, 86, 196))
        p.drawRect(QRectF(12, 12, 8, 8))
        p.setBrush(QColor(250, 200, 60))
        p.drawPolygon(QPolygonF([QPointF(5, 20), QPointF(9, 13), QPointF(12, 20)]))

    return _icon(draw, WINDOW_SIZES)
