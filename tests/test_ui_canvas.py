"""The canvas as a user drives it: tools, brush size keys, zoom and pan, the edit box, drops and paste."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from glide_studio.app.document import Document
from glide_studio.app.images import array_to_qimage
from glide_studio.app.starter import starter_scene
from glide_studio.png_metadata import write_png
from glide_studio.ui.canvas import Canvas, Tool

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def canvas(qtbot):
    document = Document(starter_scene(64))
    canvas = Canvas(document)
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.fit()
    return canvas


def at(canvas: Canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def stroke(qtbot, canvas: Canvas, points, button=LEFT) -> None:
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, button, pos=at(canvas, *points[0]))
    for point in points[1:]:
        qtbot.mouseMove(viewport, at(canvas, *point))
    qtbot.mouseRelease(viewport, button, pos=at(canvas, *points[-1]))


def test_eraser_removes_mask_and_sketch_brush_paints_the_chosen_colour(qtbot, canvas):
    canvas.set_brush_size(8)
    stroke(qtbot, canvas, [(10, 32), (54, 32)])
    assert canvas.document.mask_array()[32, 10:54].all()
    canvas.set_tool(Tool.ERASER)
    stroke(qtbot, canvas, [(32, 20), (32, 44)])
    mask = canvas.document.mask_array()
    assert mask[32, 32] == 0 and mask[32, 12] == 255
    canvas.set_tool(Tool.SKETCH)
    canvas.set_sketch_colour(QColor(0, 255, 0))
    stroke(qtbot, canvas, [(8, 8), (20, 8)])
    sketch = canvas.document.sketch_array()
    assert tuple(sketch[8, 14]) == (0, 255, 0, 255) and sketch[40, 40, 3] == 0
    assert canvas.undo_stack.count() == 3
    canvas.undo_stack.undo()
    assert canvas.document.sketch_array()[8, 14, 3] == 0


def test_bracket_keys_change_brush_size_within_limits(qtbot, canvas):
    sizes = []
    canvas.brush_size_changed.connect(sizes.append)
    start = canvas.brush_size
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > start
    for _ in range(40):
        qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size == 2 and sizes[-1] == 2


def test_invert_and_clear_mask_are_undoable(qtbot, canvas):
    canvas.set_brush_size(6)
    stroke(qtbot, canvas, [(5, 5), (6, 6)])
    painted = canvas.document.mask_array()
    canvas.invert_mask()
    assert np.array_equal(canvas.document.mask_array(), np.where(painted > 0, 0, 255))
    canvas.clear_mask()
    assert not canvas.document.has_mask()
    canvas.undo_stack.undo()
    canvas.undo_stack.undo()
    assert np.array_equal(canvas.document.mask_array(), painted)


def test_wheel_zooms_ctrl0_fits_and_middle_drag_pans(qtbot, canvas):
    fitted = canvas.zoom
    viewport = canvas.viewport()
    for _ in range(4):
        canvas.zoom_by(1.15)
    assert canvas.zoom == pytest.approx(fitted * 1.15**4)
    scroll = canvas.horizontalScrollBar()
    scroll.setValue((scroll.minimum() + scroll.maximum()) // 2)
    before = scroll.value()
    middle = Qt.MouseButton.MiddleButton
    qtbot.mousePress(viewport, middle, pos=QPoint(200, 200))
    qtbot.mouseMove(viewport, QPoint(150, 200))
    qtbot.mouseRelease(viewport, middle, pos=QPoint(150, 200))
    assert scroll.value() == before + 50
    assert not canvas.document.has_mask()  # panning never paints
    canvas.fit()
    assert canvas.zoom == pytest.approx(fitted)


def test_space_drag_pans_instead_of_painting(qtbot, canvas):
    canvas.zoom_by(3)
    scroll = canvas.verticalScrollBar()
    scroll.setValue((scroll.minimum() + scroll.maximum()) // 2)
    before = scroll.value()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas.viewport(), LEFT, pos=QPoint(200, 200))
    qtbot.mouseMove(canvas.viewport(), QPoint(200, 170))
    qtbot.mouseRelease(canvas.viewport(), LEFT, pos=QPoint(200, 170))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert scroll.value() == before + 30
    assert not canvas.document.has_mask()


def test_edit_box_moves_and_resizes_square_inside_the_picture(qtbot):
    document = Document(starter_scene(128)[:, :96].copy())  # 96 wide, 128 tall
    assert (document.edit_box.width, document.edit_box.height) == (96, 96)
    canvas = Canvas(document)
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.fit()
    canvas.set_tool(Tool.BOX)
    box = document.edit_box
    stroke(qtbot, canvas, [(40, 40), (40, 200)])  # dragged far below: stays inside the picture
    assert document.edit_box.y == 128 - 96 and document.edit_box.x == box.x
    corner = (document.edit_box.x + 96, document.edit_box.y + 96)
    stroke(qtbot, canvas, [corner, (corner[0] - 40, corner[1] - 30)])
    shrunk = document.edit_box
    assert shrunk.width == shrunk.height and shrunk.width < 96
    assert not document.has_mask()


def test_dropped_file_and_pasted_picture_open(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.ui.main_window import MainWindow

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(FakeEngine(), settings, picture=starter_scene(32))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.waitUntil(window.isActiveWindow)  # window shortcuts only fire in the active window
    try:
        picture = np.zeros((20, 30, 3), np.uint8)
        picture[:, :, 2] = 200
        path = tmp_path / "blue.png"
        write_png(path, picture, None)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        event = QDropEvent(
            QPointF(10, 10), Qt.DropAction.CopyAction, mime, LEFT, Qt.KeyboardModifier.NoModifier
        )
        window.canvas.dropEvent(event)
        assert np.array_equal(window.controller.document.picture, picture)
        assert window.controller.history.current.caption == "blue.png"

        pasted = np.full((12, 16, 3), 77, np.uint8)
        QApplication.clipboard().setImage(array_to_qimage(pasted))
        qtbot.keyClick(window.canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert np.array_equal(window.controller.document.picture, pasted)
    finally:
        window.close()
