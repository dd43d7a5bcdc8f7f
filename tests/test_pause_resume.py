"""Pause → edit → resume: a paused run keeps its whole state, a resumed one equals never pausing bit for bit,
and resuming after an edit is a fork whose record says where it went on from and what changed."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import tiny_engine, tiny_model_set
from PySide6.QtCore import QPointF, Qt
from window_helpers import open_window

from glide_studio.app.controller import StudioController
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.record import Resumed

PICTURE = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


@pytest.fixture
def controller(qtbot, models):
    controller = StudioController(tiny_engine(models), PICTURE, "start", min_interval=0.0)
    yield controller
    assert controller.shutdown()


def _setup(controller, mode: Mode, sampler: str, upsample: bool = False) -> None:
    request = Request(mode=mode, prompt="a red circle", steps=5, upsample_steps=3, batch=2, seed=11, sampler=sampler,
                      upsample_model="demo-upsample-inpaint" if upsample else None)
    controller.set_run_settings(RunSettings(request, random_seed=False))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 12:40] = 255
    sketch = np.zeros((64, 64, 4), np.uint8)
    sketch[20:36, 16:34] = (40, 40, 220, 255)
    controller.document.set_mask_array(mask)
    controller.document.set_sketch_array(sketch)


def _finish(qtbot, controller, start) -> object:
    with qtbot.waitSignal(controller.run_finished, timeout=60000) as finished:
        start()
    return finished.args[0]


def _pause_at(qtbot, controller, index: int):
    def on_step(progress) -> None:
        if progress.index == index:
            controller.pause()

    controller.run_step.connect(on_step)
    try:
        with qtbot.waitSignal(controller.run_paused, timeout=60000) as paused:
            controller.generate()
    finally:
        controller.run_step.disconnect(on_step)
    return paused.args[0]


@pytest.mark.parametrize("mode,sampler,upsample,at", [
    (Mode.INPAINT, "dpm++2m-sde", True, 5),  # paused in the upsampler's stage
    (Mode.SDEDIT, "dpm++2m", False, 2), (Mode.GENERATE, "ancestral", False, 2), (Mode.INPAINT, "ddim", False, 1)])
def test_pause_then_resume_equals_never_pausing(qtbot, controller, mode, sampler, upsample, at):
    _setup(controller, mode, sampler, upsample)
    uninterrupted = _finish(qtbot, controller, controller.generate).images
    paused = _pause_at(qtbot, controller, at)
    assert controller.paused is paused and at <= paused.index < paused.total - 1
    assert paused.preview is not None and not controller.busy
    resumed = _finish(qtbot, controller, controller.resume)
    assert np.array_equal(resumed.images, uninterrupted)
    assert resumed.record.resumed == Resumed(paused.index, ())
    assert controller.paused is None


def test_resuming_after_editing_the_caption_is_a_fork(qtbot, controller):
    _setup(controller, Mode.INPAINT, "dpm++2m")
    uninterrupted = _finish(qtbot, controller, controller.generate).images
    paused = _pause_at(qtbot, controller, 1)
    controller.set_run_settings(controller.run_settings.with_request(prompt="a blue square"))
    mask = controller.document.mask_array()
    mask[40:60, 40:60] = 255  # a larger mask: more pixels are regenerated from now on
    controller.document.set_mask_array(mask)
    fork = _finish(qtbot, controller, controller.resume)
    assert fork.record.resumed == Resumed(paused.index, ("prompt", "mask"))  # the box stays the whole picture
    assert not np.array_equal(fork.images, uninterrupted)
    kept = mask == 0
    assert np.array_equal(fork.images[0][kept], PICTURE[kept])  # the new mask's known pixels stay exact
    first, stopped, forked = controller.runs  # the paused run stays in the gallery; the fork is its child
    assert stopped.paused_at == (paused.index, paused.total) and np.array_equal(stopped.images, paused.pictures)
    assert stopped.parent is None and forked.parent == 1 and forked.paused_at is None
    assert forked.record.resumed == fork.record.resumed and forked.run_id != stopped.run_id


def test_resume_refuses_another_mode_and_a_new_run_lets_the_paused_one_go(qtbot, controller):
    _setup(controller, Mode.INPAINT, "dpm++2m")
    _pause_at(qtbot, controller, 1)
    controller.set_run_settings(controller.run_settings.with_request(mode=Mode.GENERATE))
    from glide_studio.app.errors import StudioError

    with pytest.raises(StudioError, match="its own mode"):
        controller.resume()
    assert controller.paused is not None
    _finish(qtbot, controller, controller.generate)
    assert controller.paused is None


def test_f8_pauses_and_resumes_in_the_window(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.05), np.full((32, 32, 3), 60, np.uint8))
    controller = window.controller
    controller.set_run_settings(RunSettings(Request(prompt="x", steps=12, batch=1)), announce=True)
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    window.run()
    qtbot.waitUntil(lambda: window.progress.value() >= 1, timeout=5000)
    with qtbot.waitSignal(controller.run_paused, timeout=5000):
        qtbot.keyClick(window.canvas, Qt.Key.Key_F8)
    assert window.controls.pause_button.text() == "Resume" and window.controls.pause_button.isEnabled()
    assert window.progress.format().startswith("Paused")
    with qtbot.waitSignal(controller.run_finished, timeout=10000) as finished:
        qtbot.keyClick(window.canvas, Qt.Key.Key_F8)
    assert finished.args[0].record.resumed is not None
    kinds = [event.kind for event in controller.journal.events()]
    assert "run_paused" in kinds and kinds.count("run_started") == 2
    controller.mark_saved()
    window.close()


def test_every_step_is_kept_and_forking_from_one_without_edits_gives_the_same_pixels(qtbot, controller):
    _setup(controller, Mode.SDEDIT, "dpm++2m-sde", upsample=True)
    first = _finish(qtbot, controller, controller.generate)
    total = first.record.request.steps + first.record.request.upsample_steps
    assert [step.index for step in controller.timeline] == list(range(total))
    assert all(step.state is not None and step.preview.dtype == np.uint8 for step in controller.timeline)
    again = _finish(qtbot, controller, lambda: controller.fork_from(3))
    assert np.array_equal(again.images, first.images) and again.record.resumed == Resumed(3, ())
    assert [step.index for step in controller.timeline] == list(range(total))  # steps 0-3 kept, 4- new

    last_two = sum(step.state.size_bytes for step in controller.timeline[-2:])
    controller.timeline_cap_bytes = last_two  # the oldest states go first when memory runs short
    _finish(qtbot, controller, controller.generate)
    kept = [step.state is not None for step in controller.timeline]
    assert kept == [False] * (total - 2) + [True, True]
    assert all(step.preview is not None for step in controller.timeline)  # previews stay for scrubbing
    from glide_studio.app.errors import StudioError

    with pytest.raises(StudioError, match="no longer kept"):
        controller.fork_from(0)


def test_the_timeline_scrubs_previews_and_forks_in_the_window(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), np.full((32, 32, 3), 60, np.uint8))
    controller = window.controller
    controller.set_run_settings(RunSettings(Request(prompt="x", steps=6, batch=1), random_seed=False), announce=True)
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        window.run()
    timeline = window.timeline
    assert timeline.slider.maximum() == 5 and timeline.slider.value() == 5
    timeline.slider.setValue(2)
    assert window.canvas.preview_item.isVisible() and timeline.label.text().endswith("step 3/6")
    controller.set_run_settings(controller.run_settings.with_request(prompt="y"), announce=True)
    with qtbot.waitSignal(controller.run_finished, timeout=10000) as finished:
        timeline.fork_button.click()
    assert finished.args[0].record.resumed == Resumed(2, ("prompt",))
    assert len(controller.runs) == 2
    controller.mark_saved()
    window.close()


def test_locked_pixels_of_the_prediction_are_kept_to_the_end_and_the_rest_is_regenerated(qtbot, controller):
    _setup(controller, Mode.INPAINT, "dpm++2m")
    paused = _pause_at(qtbot, controller, 1)
    lock = np.zeros((64, 64), np.uint8)
    lock[20:30, 16:28] = 255  # inside the masked region
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[lock > 0] = (70, 220, 120, 255)
    from glide_studio.app.document import LAYER_FORMAT
    from glide_studio.app.images import array_to_qimage

    controller.document.lock = array_to_qimage(layer).convertToFormat(LAYER_FORMAT)
    fork = _finish(qtbot, controller, controller.resume)
    known = fork.record.request.image  # the picture with the locked prediction pasted in
    locked = lock > 0
    assert np.array_equal(fork.images[:, locked], np.broadcast_to(known[locked], fork.images[:, locked].shape))
    assert not np.array_equal(known[locked], PICTURE[locked])  # they are the prediction's, not the picture's
    still_masked = (controller.document.mask_array() > 0) & ~locked
    assert not np.array_equal(fork.images[0][still_masked], PICTURE[still_masked])  # regenerated
    outside = controller.document.mask_array() == 0
    assert np.array_equal(fork.images[0][outside], PICTURE[outside])
    assert set(fork.record.resumed.changed) == {"image", "mask"} and fork.record.resumed.step == paused.index
    assert not controller.document.lock_array().any()  # the lock served this continuation only


def test_a_scrubbed_steps_stored_preview_equals_that_step_of_a_fresh_run(qtbot, controller):
    _setup(controller, Mode.INPAINT, "dpm++2m-sde")
    _finish(qtbot, controller, controller.generate)
    first = [step.preview.copy() for step in controller.timeline]
    _finish(qtbot, controller, controller.generate)  # the same seed: a fresh run of the same request
    again = [step.preview for step in controller.timeline]
    assert len(first) == len(again) == 5 and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[-1])  # the previews do follow the steps


def test_strokes_painted_while_paused_are_noised_to_the_current_level_and_take_effect(qtbot, controller):
    _setup(controller, Mode.SDEDIT, "dpm++2m")
    controller.set_run_settings(controller.run_settings.with_request(strength=0.9))
    paused = _pause_at(qtbot, controller, 1)
    unchanged = _finish(qtbot, controller, controller.resume)
    controller.paused = paused  # the same pause again, now with a new stroke
    sketch = controller.document.sketch_array()
    sketch[38:46, 20:36] = (250, 250, 20, 255)  # yellow, inside the mask, where nothing was painted
    controller.document.set_sketch_array(sketch)
    fork = _finish(qtbot, controller, controller.resume)
    assert "sketch" in fork.record.resumed.changed
    new = np.zeros((64, 64), bool)
    new[38:46, 20:36] = True
    old_strokes_only = unchanged.images[0][new].astype(int)
    with_stroke = fork.images[0][new].astype(int)
    assert np.abs(with_stroke - old_strokes_only).mean() > 5  # the new stroke changed the result there
    outside = controller.document.mask_array() == 0
    assert np.array_equal(fork.images[0][outside], PICTURE[outside])


def test_lock_brush_in_the_window_keeps_the_locked_prediction(qtbot, tmp_path):
    from glide_studio.ui.canvas import Tool

    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.05), np.full((64, 64, 3), 60, np.uint8))
    controller, canvas = window.controller, window.canvas
    controller.set_run_settings(RunSettings(Request(prompt="x", steps=12, batch=1)), announce=True)
    controller.document.set_mask_array(np.pad(np.ones((32, 32)), 16))
    window.run()
    qtbot.waitUntil(lambda: window.progress.value() >= 2, timeout=5000)
    with qtbot.waitSignal(controller.run_paused, timeout=5000):
        qtbot.keyClick(canvas, Qt.Key.Key_F8)
    window.tools.choose(Tool.LOCK)
    canvas.set_brush_size(8)
    viewport = canvas.viewport()
    start, end = canvas.mapFromScene(QPointF(24, 30)), canvas.mapFromScene(QPointF(40, 30))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    locked = controller.document.lock_array()
    assert locked[30, 32] and not locked[5, 5]
    with qtbot.waitSignal(controller.run_finished, timeout=10000) as finished:
        qtbot.keyClick(canvas, Qt.Key.Key_F8)
    result = finished.args[0]
    assert np.array_equal(result.images[0][locked], result.record.request.image[locked])
    assert "mask" in result.record.resumed.changed and not controller.document.lock_array().any()
    controller.mark_saved()
    window.close()
