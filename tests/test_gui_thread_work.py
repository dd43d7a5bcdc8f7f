"""What the GUI thread does while a run streams, kept short (bench_gui_latency measures the stalls): no layer drawn
that is blank, no repaint of the whole window inside a slot, each gallery icon made once, no Python called at
each paint of an icon or a settings control, the worker starting only after the window has shown the run's start,
the step archive's writer yielding the cores, and the mask layer read once per change."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QPainter
from window_helpers import open_window, run_to_the_end

from glide_studio.app import document as document_module
from glide_studio.app.document import MASK_COLOUR, Document
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.run_settings import RunSettings
from glide_studio.app.starter import starter_scene
from glide_studio.app.step_archive import StepArchive
from glide_studio.pipelines.request import Request
from glide_studio.ui import icons, thumbnails
from glide_studio.ui.canvas import Canvas, Tool
from glide_studio.ui.canvas_items import surround_bands
from glide_studio.ui.gallery_panel import ITEM_ROLE, THUMB
from glide_studio.ui.status_widgets import RunProgress, StatusBar


class Painter:
    """Stands in for a QPainter: notes what a scene item draws."""

    def __init__(self) -> None:
        self.images = 0

    def drawImage(self, *_args) -> None:  # noqa: N802 - QPainter's name
        self.images += 1


class Paints(QObject):
    def __init__(self, widget) -> None:
        super().__init__()
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, _watched, event) -> bool:  # noqa: N802
        self.count += event.type() == QEvent.Type.Paint
        return False


def test_a_blank_layer_is_not_drawn_and_a_stroke_or_an_undo_is_seen_at_once(qtbot):
    canvas = Canvas(Document(starter_scene(64)))
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.fit()
    item = canvas.sketch_item

    def drawn() -> int:
        painter = Painter()
        item.paint(painter, None)
        return painter.images

    assert item.is_blank() and drawn() == 0
    canvas.set_tool(Tool.SKETCH)
    viewport, point = canvas.viewport(), canvas.mapFromScene(QPointF(20, 20))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=point)
    assert not item.is_blank() and drawn() == 1  # mid-stroke, before the stroke is committed
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=point)
    canvas.undo_stack.undo()
    assert item.is_blank() and drawn() == 0
    canvas.undo_stack.redo()
    assert not item.is_blank() and drawn() == 1
    canvas.document.clear_sketch()
    assert item.is_blank()
    canvas.document.set_sketch_array(np.pad(np.full((4, 4, 4), 255, np.uint8), ((8, 52), (8, 52), (0, 0))))
    assert not item.is_blank()


@pytest.mark.parametrize("change", ["progress", "status"])
def test_the_progress_bar_and_the_status_bar_paint_after_the_slot_not_inside_it(qtbot, change):
    bar = StatusBar()
    progress = RunProgress()
    bar.addPermanentWidget(progress)
    qtbot.addWidget(bar)
    bar.resize(600, 30)
    bar.show()
    qtbot.waitExposed(bar)
    widget = progress if change == "progress" else bar
    qtbot.wait(50)
    paints = Paints(widget)
    if change == "progress":
        progress.setRange(0, 30)
        progress.setValue(30)  # Qt's QProgressBar repaints at once at its maximum
    else:
        bar.showMessage("Done")
    assert paints.count == 0
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2000)
    if change == "progress":
        assert (progress.value(), progress.maximum()) == (30, 30)
    else:
        assert bar.currentMessage() == "Done"
    assert widget.updatesEnabled()


def test_the_gallery_adds_a_new_runs_candidates_and_leaves_the_others_be(qtbot, tmp_path, monkeypatch):
    made = []

    def counted(picture, side):
        made.append(side)
        return thumbnail_icon(picture, side)

    thumbnail_icon = thumbnails.thumbnail_icon
    monkeypatch.setattr(thumbnails, "thumbnail_icon", counted)
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), starter_scene(32))
    controller = window.controller
    controller.set_run_settings(RunSettings(Request(prompt="a red circle", steps=2, batch=2), random_seed=False),
                                announce=True)
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    gallery = window.gallery.list
    for run in range(3):
        made.clear()
        before = [gallery.item(row) for row in range(gallery.count())]
        run_to_the_end(qtbot, window)
        assert made.count(THUMB) == 2  # the strip makes its own, at its own size
        assert [gallery.item(row) for row in range(2, gallery.count())] == before
        assert [gallery.item(row).data(ITEM_ROLE) for row in range(gallery.count())] == [
            (number, candidate) for number in reversed(range(run + 1)) for candidate in (0, 1)]
    made.clear()
    controller.delete_candidate(0, 1)
    assert [gallery.item(row).data(ITEM_ROLE) for row in range(gallery.count())] == [
        (2, 0), (2, 1), (1, 0), (1, 1), (0, 0)]
    assert made.count(THUMB) == 0
    window.gallery.select(1, 1)
    assert window.gallery.selected() == (1, 1)
    controller.mark_saved()
    window.close()


def test_icons_and_settings_controls_run_no_python_when_they_paint(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), starter_scene(32))
    qtbot.wait(50)
    calls = []
    sys.setprofile(lambda frame, event, _arg: calls.append(frame.f_code.co_qualname) if event == "call" else None)
    controls = window.controls
    try:
        for widget in (*controls.fields.widgets.values(), controls.model, controls.device, controls.mode,
                       controls.run_bar, window.tools):
            widget.repaint()
    finally:
        sys.setprofile(None)
    assert calls == []
    icon = icons.run()
    assert isinstance(icon, QIcon) and not icon.pixmap(QSize(24, 24), 2.0).isNull()
    window.close()


def test_the_worker_starts_a_run_after_the_window_has_handled_its_start(qtbot, tmp_path):
    engine = FakeEngine(step_delay=0.0)
    window = open_window(qtbot, tmp_path, engine, starter_scene(32))
    window.controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    window.controller.set_run_settings(RunSettings(Request(prompt="a red circle", steps=2, batch=1)), announce=True)
    with qtbot.waitSignal(window.controller.run_finished, timeout=10_000):
        window.run()
        time.sleep(0.3)  # the GUI thread is busy: the worker has not been given the run yet
        assert engine.requests == [] and window.controller.busy
    assert len(engine.requests) == 1
    window.controller.mark_saved()
    window.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_step_archive_writer_runs_at_the_lowest_priority(tmp_path):
    archive = StepArchive(tmp_path / "steps.sqlite")
    try:
        deadline = time.monotonic() + 5
        stat = Path(f"/proc/self/task/{archive._thread.native_id}/stat")
        while time.monotonic() < deadline:
            nice = int(stat.read_text().rsplit(")", 1)[1].split()[16])
            if nice == 19:
                break
            time.sleep(0.01)
        assert nice == 19
    finally:
        archive.close()


@pytest.mark.parametrize("box", [(8, 8, 32, 32), (0, 0, 64, 64), (40, 20, 40, 40), (-10, 30, 20, 20),
                                 (70, 70, 10, 10), (0, 10, 64, 20)])
def test_the_edit_box_dims_exactly_the_picture_outside_it(box):
    picture, rect = QRectF(0, 0, 64, 64), QRectF(*box)
    covered = np.zeros((64, 64), int)
    for band in surround_bands(picture, rect):
        left, top, right, bottom = (round(v) for v in (band.left(), band.top(), band.right(), band.bottom()))
        covered[top:bottom, left:right] += 1
    x, y, w, h = box
    outside = np.ones((64, 64), bool)
    outside[max(0, y): max(0, y + h), max(0, x): max(0, x + w)] = False
    assert np.array_equal(covered, outside.astype(int))  # every pixel outside once, none inside


def test_the_mask_is_read_once_per_change_and_every_change_is_seen(qapp, monkeypatch):
    document = Document(starter_scene(64))
    reads = []
    convert = document_module.qimage_to_array
    monkeypatch.setattr(document_module, "qimage_to_array", lambda *args: reads.append(1) or convert(*args))
    assert not document.has_mask() and not document.mask_array().any() and len(reads) == 1
    painter = QPainter(document.mask)  # as a brush stroke paints: straight onto the layer
    painter.fillRect(4, 6, 10, 8, MASK_COLOUR)
    painter.end()
    assert document.has_mask() and document.mask_array()[6:14, 4:14].all() and len(reads) == 2
    returned = document.mask_array()
    returned[:] = 0  # a caller's copy: the document's own reading is not changed by it
    assert document.mask_array()[6:14, 4:14].all() and len(reads) == 2
    document.invert_mask()
    assert document.mask_array()[0, 0] == 255 and document.mask_array()[8, 8] == 0
    document.clear_mask()
    assert not document.has_mask()
