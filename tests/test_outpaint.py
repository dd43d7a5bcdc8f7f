"""Outpainting: the canvas grows with every old pixel kept bit for bit, boxes with context cover the new area,
and an Outpainter fills it box by box through the runner (fake engine and the real pipelines), ending as one
gallery run; cancelling keeps the extended canvas and nothing else; bad sizes are refused."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import tiny_engine, tiny_model_set

from glide_studio.app.controller import StudioController
from glide_studio.app.errors import StudioError
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.images import MAX_SIDE
from glide_studio.app.journal import Journal
from glide_studio.app.outpaint import Outpainter, extend_picture, plan_boxes, seam_px, settled_region
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import Mode, Request
from glide_studio.ui.outpaint_dialog import OutpaintDialog

PICTURE = np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)


# --- extend_picture -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sides", [(0, 0, 48, 0), (10, 20, 30, 40), (5, 0, 0, 0), (0, 0, 0, 0)])
@pytest.mark.parametrize("fill", ["edge", "mean", (10, 200, 30)])
def test_extend_keeps_every_old_pixel_and_marks_exactly_the_new_ones(sides, fill):
    left, top, right, bottom = sides
    picture = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    grown, new_area = extend_picture(picture, left, top, right, bottom, fill=fill)
    assert grown.shape == (30 + top + bottom, 50 + left + right, 3) and grown.dtype == np.uint8
    assert new_area.shape == grown.shape[:2] and new_area.dtype == np.uint8
    assert np.array_equal(grown[top: top + 30, left: left + 50], picture)
    expected = np.full(grown.shape[:2], 255, np.uint8)
    expected[top: top + 30, left: left + 50] = 0
    assert np.array_equal(new_area, expected)
    assert set(np.unique(new_area)) <= {0, 255}


def test_the_edge_fill_continues_the_border_colours():
    picture = np.zeros((8, 8, 3), np.uint8)
    picture[:, :, 0] = 200  # a red picture: the fill next to it is red too
    grown, new_area = extend_picture(picture, 0, 0, 16, 0)
    assert (grown[new_area > 0][:, 0] == 200).all() and (grown[new_area > 0][:, 1:] == 0).all()


@pytest.mark.parametrize("sides,match", [
    ((-1, 0, 0, 0), "cannot be negative"),
    ((0, 0, MAX_SIDE, 0), "largest side"),
    ((0, MAX_SIDE - 63, 0, 0), "largest side"),
    ((0, 0, 1.5, 0), "whole number"),
])
def test_bad_sizes_are_refused_with_a_clear_error(sides, match):
    with pytest.raises(StudioError, match=match):
        extend_picture(PICTURE, *sides)


def test_the_largest_side_itself_is_allowed():
    grown, _ = extend_picture(np.zeros((4, 4, 3), np.uint8), 0, 0, MAX_SIDE - 4, 0, fill=0)
    assert grown.shape == (4, MAX_SIDE, 3)


# --- plan_boxes ---------------------------------------------------------------------------------------------

def _check_plan(picture_size, new_area, side, boxes, context_share=0.25):
    width, height = picture_size
    todo = new_area != 0
    covered = np.zeros_like(todo)
    seam = seam_px(side) if 2 * seam_px(side) < min(side, width, height) else 0
    for box in boxes:
        assert box.width == min(side, width) and box.height == min(side, height)
        assert 0 <= box.x and box.x + box.width <= width and 0 <= box.y and box.y + box.height <= height
        region = (slice(box.y, box.y + box.height), slice(box.x, box.x + box.width))
        assert todo[region].any(), "every box has something left to fill"
        known = (~todo[region]).mean()
        assert known >= context_share, f"{box} sees only {known:.0%} of known pixels"
        covered[region] = True
        x0, y0, x1, y1 = settled_region(box, picture_size, seam)
        todo[y0:y1, x0:x1] = False
    assert covered[new_area != 0].all(), "every new pixel lies in a box"
    assert not todo.any(), "every new pixel ends up finished"


@pytest.mark.parametrize("size,sides,side", [
    ((64, 64), (0, 0, 48, 0), 64),
    ((64, 64), (48, 0, 0, 0), 64),
    ((256, 256), (128, 128, 128, 128), 256),
    ((300, 200), (0, 0, 700, 0), 256),
    ((200, 300), (0, 500, 0, 400), 256),
    ((120, 90), (64, 32, 200, 100), 64),
])
def test_plan_covers_every_new_pixel_and_each_box_has_context(size, sides, side):
    picture = np.zeros((size[1], size[0], 3), np.uint8)
    grown, new_area = extend_picture(picture, *sides, fill=0)
    picture_size = (grown.shape[1], grown.shape[0])
    boxes = plan_boxes(picture_size, new_area, side)
    _check_plan(picture_size, new_area, side, boxes)


def test_extending_right_by_less_than_a_box_needs_one_box_reaching_back_a_quarter():
    _, new_area = extend_picture(PICTURE, 0, 0, 48, 0, fill=0)
    boxes = plan_boxes((112, 64), new_area, 64)
    assert [(box.x, box.y, box.width, box.height) for box in boxes] == [(48, 0, 64, 64)]


def test_a_tiny_picture_grown_a_lot_still_gets_covered_nearest_context_first():
    _, new_area = extend_picture(np.zeros((8, 8, 3), np.uint8), 100, 100, 100, 100, fill=0)
    boxes = plan_boxes((208, 208), new_area, 64)
    covered = np.zeros(new_area.shape, bool)
    for box in boxes:
        covered[box.y: box.y + box.height, box.x: box.x + box.width] = True
    assert covered[new_area > 0].all()
    first = boxes[0]
    assert first.x <= 100 < first.x + 64 and first.y <= 100 < first.y + 64  # it starts at the old picture


# --- the Outpainter -----------------------------------------------------------------------------------------

def _controller(engine, picture=PICTURE, steps=3):
    controller = StudioController(engine, picture, "start", min_interval=0.0)
    request = Request(mode=Mode.GENERATE, prompt="a red circle", steps=steps, upsample_steps=2, batch=3, seed=5)
    controller.set_run_settings(RunSettings(request, random_seed=False))
    return controller


def _outpaint(qtbot, outpainter, *sides):
    events = []
    outpainter.progress.connect(lambda done, total: events.append(("progress", done, total)))
    outpainter.failed.connect(lambda message: events.append(("failed", message)))
    with qtbot.waitSignal(outpainter.finished, timeout=120000):
        boxes = outpainter.start(*sides)
    return boxes, events


def _check_filled(controller, before, sides, fill):
    left, top, right, bottom = sides
    height, width = before.shape[:2]
    assert len(controller.runs) == 1 and controller.shown_run == 0
    images = controller.runs[0].images
    assert images.shape == (1, height + top + bottom, width + left + right, 3)
    result = images[0]
    assert np.array_equal(result[top: top + height, left: left + width], before)  # old pixels bit for bit
    new = np.ones(result.shape[:2], bool)
    new[top: top + height, left: left + width] = False
    changed = (result != fill).any(axis=2)
    assert changed[new].mean() > 0.9, "the new area is painted, not left as the neutral fill"
    return result


def test_outpainting_with_the_fake_engine_fills_every_box_and_ends_as_one_gallery_run(qtbot):
    controller = _controller(FakeEngine(step_delay=0.0))
    try:
        outpainter = Outpainter(controller, side=64)
        sides = (30, 0, 100, 20)
        boxes, events = _outpaint(qtbot, outpainter, *sides)
        assert len(boxes) >= 2
        assert events[-1] == ("progress", len(boxes), len(boxes))
        assert [event for event in events if event[0] == "failed"] == []
        fill, _ = extend_picture(PICTURE, *sides)
        result = _check_filled(controller, PICTURE, sides, fill)
        # The fake paints each box's mask in one colour: every new pixel got some box's colour.
        new = np.ones(result.shape[:2], bool)
        new[0:64, 30:94] = False
        requests = controller.engine.requests
        assert len(requests) == len(boxes)
        for request, box in zip(requests, boxes, strict=True):
            assert request.mode == Mode.INPAINT and request.batch == 1 and request.edit_box == box
            painted = np.asarray(request.mask) > 0
            inside = np.zeros_like(painted)
            inside[box.y: box.y + box.height, box.x: box.x + box.width] = True
            assert painted.any() and not (painted & ~inside).any() and not (painted & ~new).any()
        # The document: the extended picture (a history node) with the new area as the mask.
        document = controller.document
        assert np.array_equal(document.picture, fill)
        assert np.array_equal(document.mask_array() > 0, new)
        assert controller.history.current.caption == "Extend canvas"
        # Accepting makes it the picture; going back in the history gives the original picture.
        controller.accept_candidate(0)
        assert np.array_equal(document.picture, result)
        extended_node = controller.history.current.parent_id
        controller.go_to_node(controller.history.node(extended_node).parent_id)
        assert np.array_equal(document.picture, PICTURE)
    finally:
        assert controller.shutdown()


def test_the_real_pipelines_fill_the_new_area_and_keep_the_old_pixels(qtbot, reference_dir):
    controller = _controller(tiny_engine(tiny_model_set(reference_dir)), steps=3)
    controller.set_run_settings(controller.run_settings.with_request(upsample_model="demo-upsample-inpaint"))
    try:
        outpainter = Outpainter(controller, side=64)  # the tiny upsamplers' result size
        boxes, _ = _outpaint(qtbot, outpainter, 0, 0, 48, 0)
        assert [(box.x, box.y, box.width, box.height) for box in boxes] == [(48, 0, 64, 64)]
        fill, _ = extend_picture(PICTURE, 0, 0, 48, 0)
        _check_filled(controller, PICTURE, (0, 0, 48, 0), fill)
        assert not controller.busy
    finally:
        assert controller.shutdown()


def test_runs_of_other_jobs_still_reach_the_gallery_after_outpainting(qtbot):
    controller = _controller(FakeEngine(step_delay=0.0))
    try:
        _outpaint(qtbot, Outpainter(controller, side=64), 0, 0, 48, 0)
        with qtbot.waitSignal(controller.run_finished, timeout=10000):
            controller.generate()
        assert len(controller.runs) == 2 and len(controller.runs[1].images) == 3
    finally:
        assert controller.shutdown()


@pytest.mark.parametrize("how", ["controller", "outpainter"])
def test_cancel_stops_cleanly_and_leaves_the_extended_document(qtbot, how):
    controller = _controller(FakeEngine(step_delay=0.02), steps=6)
    try:
        outpainter = Outpainter(controller, side=64)
        done = []
        outpainter.progress.connect(lambda finished, total: done.append(finished))
        outpainter.finished.connect(lambda: done.append("finished"))

        def cancel_in_second_box(progress) -> None:
            if done and done[-1] == 1 and progress.index == 1:
                (controller if how == "controller" else outpainter).cancel()

        outpainter.step.connect(cancel_in_second_box)
        with qtbot.waitSignal(outpainter.cancelled, timeout=10000):
            boxes = outpainter.start(0, 0, 160, 0)
        assert len(boxes) >= 3 and "finished" not in done
        assert not outpainter.running and not controller.busy
        assert controller.runs == []  # nothing half-filled joins the gallery
        fill, new_area = extend_picture(PICTURE, 0, 0, 160, 0)
        assert np.array_equal(controller.document.picture, fill)
        assert np.array_equal(controller.document.mask_array(), new_area)
        steps = controller.engine.steps_computed
        qtbot.wait(200)
        assert controller.engine.steps_computed == steps  # no further box started
        # The controller works as before: its own runs reach the gallery again.
        with qtbot.waitSignal(controller.run_finished, timeout=10000):
            controller.generate()
        assert len(controller.runs) == 1
    finally:
        assert controller.shutdown()


def test_a_failing_box_reports_failed_and_the_gallery_stays_empty(qtbot):
    controller = _controller(FakeEngine(step_delay=0.0, fail_with=RuntimeError("boom")))
    try:
        outpainter = Outpainter(controller, side=64)
        with qtbot.waitSignal(outpainter.failed, timeout=10000) as failed:
            outpainter.start(0, 0, 48, 0)
        assert "boom" in failed.args[0]
        assert controller.runs == [] and not outpainter.running
    finally:
        assert controller.shutdown()


def test_the_outpainter_refuses_bad_sizes_and_a_busy_controller_without_changing_anything(qtbot):
    controller = _controller(FakeEngine(step_delay=0.05), steps=20)
    try:
        outpainter = Outpainter(controller, side=64)
        for sides, match in [((0, 0, 0, 0), "Nothing to extend"), ((0, -5, 0, 0), "negative"),
                             ((0, 0, MAX_SIDE, 0), "largest side")]:
            with pytest.raises(StudioError, match=match):
                outpainter.start(*sides)
        controller.document.set_mask_array(np.pad(np.ones((8, 8)), 28))
        controller.set_run_settings(controller.run_settings.with_request(mode=Mode.INPAINT))
        controller.generate()
        with pytest.raises(StudioError, match="current run"):
            outpainter.start(0, 0, 48, 0)
        assert len(controller.history) == 1 and controller.document.picture.shape == PICTURE.shape
        with qtbot.waitSignal(controller.run_cancelled, timeout=10000):
            controller.cancel()
    finally:
        assert controller.shutdown()


def test_the_journal_replays_an_outpaint_and_its_accept(qtbot, tmp_path):
    live = _controller(FakeEngine(step_delay=0.0))
    rebuilt = _controller(FakeEngine(step_delay=0.0), np.zeros((8, 8, 3), np.uint8))
    try:
        live.attach_journal(Journal(tmp_path / "journal.sqlite"))
        _outpaint(qtbot, Outpainter(live, side=64), 0, 16, 48, 0)
        live.accept_candidate(0)
        rebuilt.replay(Journal(tmp_path / "journal.sqlite"))
        assert rebuilt.state_digest() == live.state_digest()
        assert np.array_equal(rebuilt.document.picture, live.runs[0].images[0])
    finally:
        assert live.shutdown() and rebuilt.shutdown()


# --- the dialog ---------------------------------------------------------------------------------------------

def test_the_dialog_asks_four_sides_with_a_right_default(qtbot):
    dialog = OutpaintDialog()
    qtbot.addWidget(dialog)
    assert dialog.values() == (0, 0, 128, 0)
    for spin in dialog.spins.values():
        assert (spin.minimum(), spin.maximum()) == (0, 2048)
    dialog.spins["left"].setValue(64)
    dialog.spins["bottom"].setValue(5000)  # clamped to the range
    assert dialog.values() == (64, 0, 128, 2048)
    for spin in dialog.spins.values():
        spin.setValue(0)
    from PySide6.QtWidgets import QDialogButtonBox

    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()


def test_the_launcher_outpaints_in_the_real_window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from glide_studio.ui.main_window import MainWindow
    from glide_studio.ui.outpaint_dialog import OutpaintLauncher

    window = MainWindow(FakeEngine(step_delay=0.0), QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                        picture=PICTURE, min_interval=0.0)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    launcher = OutpaintLauncher(window)
    launcher.outpainter.side = 64
    window.controller.set_run_settings(RunSettings(Request(prompt="a blue square", steps=3, batch=2)),
                                       announce=True)
    with qtbot.waitSignal(launcher.outpainter.finished, timeout=10000):
        launcher.start(0, 0, 48, 0)
    assert window.controller.runs[0].images.shape == (1, 64, 112, 3)
    assert "gallery" in window.statusBar().currentMessage()
    assert window.progress.format() == "Done"
    window.accept()
    assert window.controller.document.picture.shape == (64, 112, 3)
    window.controller.mark_saved()
    window.close()
