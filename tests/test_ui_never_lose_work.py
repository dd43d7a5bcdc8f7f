"""The never-lose-work loop in the real window: results land in the box at any picture size, accepting is
undoable, no candidate is lost to the next run, and quitting with unsaved strokes asks."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import tiny_engine, tiny_model_set
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from window_helpers import open_window

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.ui import dialogs
from glide_studio.ui.main_window import MainWindow


@pytest.fixture(scope="module")
def tiny_models(reference_dir):
    return tiny_model_set(reference_dir)


def _window(qtbot, tmp_path, engine, picture) -> MainWindow:
    window = open_window(qtbot, tmp_path, engine, picture)
    return window


def _run(qtbot, window) -> None:
    with qtbot.waitSignal(window.controller.run_finished, timeout=60000):
        window.run()


@pytest.mark.parametrize("mode", [Mode.GENERATE, Mode.UPSAMPLE])
def test_generate_and_upsample_on_an_800x600_picture_change_only_the_box(qtbot, tmp_path, tiny_models, mode):
    picture = np.random.default_rng(5).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    window = _window(qtbot, tmp_path, tiny_engine(tiny_models), picture)
    request = Request(mode=mode, prompt="a red circle", steps=2, upsample_steps=2, batch=1)
    window.controller.set_run_settings(RunSettings(request, random_seed=False), announce=True)
    box = EditBox(300, 120, 400, 400)
    window.controller.document.set_edit_box(box)  # placed by hand, as with the box tool
    _run(qtbot, window)
    window.accept()
    result = window.controller.document.picture
    assert result.shape == (600, 800, 3)  # the picture keeps its size
    outside = np.ones((600, 800), bool)
    outside[box.y: box.y + box.height, box.x: box.x + box.width] = False
    assert np.array_equal(result[outside], picture[outside])
    assert not np.array_equal(result[~outside], picture[~outside])
    window.controller.mark_saved()
    window.close()


def test_accept_then_ctrl_z_restores_the_pixels_and_candidates_survive_the_next_run(qtbot, tmp_path):
    original = np.full((64, 64, 3), 90, np.uint8)
    window = _window(qtbot, tmp_path, FakeEngine(step_delay=0.0), original)
    controller = window.controller
    controller.set_run_settings(RunSettings(Request(prompt="a blue square", steps=2, batch=2)), announce=True)
    controller.document.set_mask_array(np.pad(np.ones((20, 20)), 22))
    _run(qtbot, window)
    first_run = controller.candidates.copy()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return)
    assert np.array_equal(controller.document.picture, first_run[0])
    assert controller.document.has_mask()  # kept for the next roll of the same area
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(controller.document.picture, original)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(controller.document.picture, first_run[0])

    controller.set_run_settings(controller.run_settings.with_request(prompt="a green square"))
    _run(qtbot, window)
    assert window.gallery.count() == 4  # the first run's two candidates are still there
    window.gallery.select(0, 1)
    window.gallery.accept_button.click()
    assert np.array_equal(controller.document.picture, first_run[1])
    window.controller.mark_saved()
    window.close()


def test_enter_in_the_caption_accepts_nothing_and_ctrl_e_exports_from_it(qtbot, tmp_path, monkeypatch):
    window = _window(qtbot, tmp_path, FakeEngine(step_delay=0.0), np.full((32, 32, 3), 50, np.uint8))
    controller = window.controller
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    _run(qtbot, window)
    window.controls.caption.setFocus()
    qtbot.keyClick(window.controls.caption, Qt.Key.Key_Return)
    assert len(controller.history) == 1 and controller.candidates is not None
    asked = []
    monkeypatch.setattr(dialogs, "save_file_name", lambda parent, title, *args: asked.append(title) or "")
    qtbot.keyClick(window.controls.caption, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert asked == ["Export PNG"]  # the window's Ctrl+E, not the caption's end-of-line
    window.controller.mark_saved()
    window.close()


def test_quitting_with_unsaved_strokes_asks_and_cancel_keeps_the_window(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QPointF

    window = _window(qtbot, tmp_path, FakeEngine(), np.full((32, 32, 3), 50, np.uint8))
    asked = []

    def answer(parent, title, text, *args, **kwargs):
        asked.append(title)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", answer)
    assert not window.files.has_unsaved_edits
    canvas = window.canvas
    canvas._begin_stroke(QPointF(5, 5))
    canvas._end_stroke()
    assert window.files.has_unsaved_edits
    assert not window.close() and asked == ["Unsaved edits"] and window.isVisible()
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Discard)
    folder = window.session.folder
    assert window.close()
    assert not folder.exists()  # discarded on purpose: nothing is offered back


def test_a_run_with_no_room_for_its_results_is_refused_before_it_starts(qtbot, tmp_path, monkeypatch):
    import collections
    import shutil

    engine = FakeEngine(step_delay=0.0)
    window = _window(qtbot, tmp_path, engine, np.full((32, 32, 3), 50, np.uint8))
    window.controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 0))
    window.run()
    assert "No room for this run's results" in window.statusBar().currentMessage()
    assert engine.requests == [] and not window.controller.busy
    window.controller.mark_saved()
    window.close()


def test_the_difference_heatmap_shows_that_nothing_outside_the_mask_changed(qtbot, tmp_path):
    from glide_studio.app.images import difference_heatmap, qimage_to_array

    picture = np.full((32, 32, 3), 80, np.uint8)
    window = _window(qtbot, tmp_path, FakeEngine(step_delay=0.0), picture)
    mask = np.pad(np.ones((8, 8)), 12)
    window.controller.document.set_mask_array(mask)
    _run(qtbot, window)
    window.heatmap_action.trigger()
    shown = qimage_to_array(window.canvas.picture_item.pixmap().toImage())
    assert not shown[mask == 0].any() and shown[mask > 0].max(axis=1).min() > 0  # black where unchanged
    nearly = picture.copy()
    nearly[0, 0, 2] += 1
    assert difference_heatmap(picture, nearly)[0, 0].any() and not difference_heatmap(picture, nearly)[1:].any()
    window.heatmap_action.trigger()
    assert np.array_equal(qimage_to_array(window.canvas.picture_item.pixmap().toImage()),
                          window.controller.candidates[0])
    window.controller.mark_saved()
    window.close()


def test_time_left_prices_each_stage_at_its_own_cost_per_step(qtbot, tmp_path):
    from glide_studio.app.worker import Progress

    window = _window(qtbot, tmp_path, FakeEngine(), np.full((32, 32, 3), 50, np.uint8))

    def step(index, elapsed, stage, stage_index, stage_total):
        return window._time_left(Progress(1, index, 8, stage, elapsed, None, stage_index=stage_index,
                                          stage_total=stage_total))

    # a finished run: base steps 0.1 s, upsample steps 1 s
    for index in range(5):
        step(index, 0.1 * (index + 1), "base", index, 5)
    for index in range(3):
        step(5 + index, 0.5 + 1.0 * (index + 1), "upsample", index, 3)
    window._stage_began = window._last_elapsed = 0.0  # the next run starts
    assert step(1, 0.2, "base", 1, 5) == pytest.approx(3 * 0.1 + 3 * 1.0)  # not 6 more steps at 0.1 s
    window.controller.mark_saved()
    window.close()
