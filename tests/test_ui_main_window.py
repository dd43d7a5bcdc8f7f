"""The main window driven like a user: real mouse and key events, offscreen, with a fake engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import starter_scene
from glide_studio.ui.canvas import Tool
from glide_studio.ui.main_window import MainWindow
from glide_studio.ui.theme import apply_dark_theme

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


class Dialogs:
    """Stands in for QMessageBox so no test ever blocks on a modal dialog."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str, str]] = []
        self.answer = QMessageBox.StandardButton.Yes

    def install(self, monkeypatch) -> None:
        for kind in ("warning", "critical", "information"):
            monkeypatch.setattr(QMessageBox, kind, self._recorder(kind))
        monkeypatch.setattr(QMessageBox, "question", self._question)

    def _recorder(self, kind):
        def record(parent, title, text, *args, **kwargs):
            self.shown.append((kind, title, text))
            return QMessageBox.StandardButton.Ok

        return record

    def _question(self, parent, title, text, *args, **kwargs):
        self.shown.append(("question", title, text))
        if "Unsaved" in title:
            return QMessageBox.StandardButton.Discard
        return self.answer


@pytest.fixture
def dialogs(monkeypatch):
    recorder = Dialogs()
    recorder.install(monkeypatch)
    return recorder


def open_window(qtbot, tmp_path, engine, picture=None) -> MainWindow:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(engine, settings, picture=picture, min_interval=0.0)
    qtbot.addWidget(window)
    window.resize(1100, 760)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.waitUntil(window.isActiveWindow)  # window shortcuts only fire in the active window
    window.canvas.fit()
    return window


@pytest.fixture
def window(qtbot, tmp_path, dialogs):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.03), starter_scene(64))
    yield window
    window.close()
    assert not window.controller.runner.is_running()


def view_point(window: MainWindow, x: float, y: float) -> QPoint:
    return window.canvas.mapFromScene(QPointF(x, y))


def paint_stroke(qtbot, window: MainWindow, points: list[tuple[float, float]]) -> None:
    viewport = window.canvas.viewport()
    left = Qt.MouseButton.LeftButton
    qtbot.mousePress(viewport, left, pos=view_point(window, *points[0]))
    for point in points[1:]:
        qtbot.mouseMove(viewport, view_point(window, *point))
    qtbot.mouseRelease(viewport, left, pos=view_point(window, *points[-1]))


def run_with_keys(qtbot, window: MainWindow, caption: str) -> None:
    window.controls.caption.clear()
    qtbot.keyClicks(window.controls.caption, caption)
    qtbot.keyClick(window.controls.caption, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)


def test_painted_mask_and_ctrl_enter_run_an_inpaint_that_keeps_unmasked_pixels(qtbot, window):
    original = window.controller.document.picture.copy()
    window.canvas.set_brush_size(10)
    paint_stroke(qtbot, window, [(20, 20), (30, 24), (40, 30)])
    mask = window.controller.document.mask_array()
    assert mask[24, 30] == 255 and mask[5, 5] == 0 and mask[60, 60] == 0

    steps, frames = [], []
    window.controller.run_step.connect(lambda progress: steps.append(progress.index))
    window.controller.run_step.connect(lambda _progress: frames.append(window.canvas.preview_frames))
    with qtbot.waitSignal(window.controller.run_finished, timeout=10000) as finished:
        run_with_keys(qtbot, window, "a green square")
    request = finished.args[0].request
    assert request.prompt == "a green square" and request.mode.value == "inpaint"
    assert np.array_equal(request.mask, mask)
    assert steps == list(range(request.steps))
    assert frames == list(range(1, request.steps + 1))  # the canvas showed every step's preview
    results = finished.args[0].images
    outside = mask == 0
    for result in results:
        assert np.array_equal(result[outside], original[outside])
        assert not np.array_equal(result[~outside], original[~outside])
    assert window.candidates.count() == len(results)
    assert window.controls.run_button.isEnabled()


def test_escape_after_the_first_step_stops_within_one_step(qtbot, window):
    engine = window.controller.engine
    engine.step_delay = 0.1
    window.controls.mode.setCurrentIndex(window.controls.mode.findData("generate"))
    cancelled = []
    window.controller.run_cancelled.connect(lambda: cancelled.append(True))
    with qtbot.waitSignal(window.controller.run_step, timeout=5000):
        run_with_keys(qtbot, window, "a blue circle")
    computed_at_escape = engine.steps_computed
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    assert engine.steps_computed <= computed_at_escape + 1
    assert engine.closed_runs == 1
    assert window.controller.candidates is None
    assert window.progress.format() == "Cancelled"


def test_closing_mid_run_leaves_no_running_thread(qtbot, tmp_path, dialogs):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.05), starter_scene(64))
    window.controls.mode.setCurrentIndex(window.controls.mode.findData("generate"))
    window.controls.fields.widgets["steps"].setValue(200)
    with qtbot.waitSignal(window.controller.run_step, timeout=5000):
        window.run()
    window.close()
    assert not window.controller.runner.is_running()
    assert window.controller.engine.steps_computed < 200
    assert not (tmp_path / "recovery" / "session.lock").exists()  # a clean exit leaves nothing to recover


def test_candidates_accept_history_branch_and_stroke_undo(qtbot, window):
    controller, canvas = window.controller, window.canvas
    window.controls.fields.widgets["batch"].setValue(3)
    canvas.set_brush_size(12)
    paint_stroke(qtbot, window, [(10, 10), (20, 12)])
    paint_stroke(qtbot, window, [(40, 40), (50, 44)])
    assert canvas.undo_stack.count() == 2
    with_both = controller.document.mask_array()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert controller.document.mask_array()[44, 45] == 0 and controller.document.mask_array()[11, 15] == 255
    redo = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(canvas, Qt.Key.Key_Z, redo)
    assert np.array_equal(controller.document.mask_array(), with_both)

    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        run_with_keys(qtbot, window, "first edit")
    assert window.candidates.count() == 3
    item = window.candidates.list.item(1)
    qtbot.mouseClick(
        window.candidates.list.viewport(),
        Qt.MouseButton.LeftButton,
        pos=window.candidates.list.visualItemRect(item).center(),
    )
    assert controller.viewed_candidate == 1
    chosen = controller.candidates[1].copy()
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    first = controller.history.current
    assert first.caption == "first edit" and first.record.candidate == 1
    assert np.array_equal(controller.document.picture, chosen)
    assert window.candidates.count() == 0 and len(controller.history) == 2

    root_item = window.history_panel.item_for(1)
    tree = window.history_panel.tree
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(root_item).center())
    assert controller.history.current.id == 1
    assert np.array_equal(controller.document.picture, starter_scene(64))

    paint_stroke(qtbot, window, [(30, 30), (34, 34)])
    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        run_with_keys(qtbot, window, "second edit")
    window.accept()
    children = [node.caption for node in controller.history.children(1)]
    assert children == ["first edit", "second edit"]  # a branch, not a list
    assert root_item.childCount() == 2


def test_save_and_reopen_restore_picture_and_parameters(qtbot, window, tmp_path, dialogs):
    controller = window.controller
    paint_stroke(qtbot, window, [(20, 20), (30, 30)])
    window.controls.fields.widgets["steps"].setValue(7)
    window.controls.random_seed.setChecked(False)
    window.controls.fields.widgets["seed"].setValue(1234)
    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        run_with_keys(qtbot, window, "a purple triangle")
    window.accept()
    exported = tmp_path / "result.png"
    assert window.files.export_png(exported)
    project = tmp_path / "scene.glidestudio"
    assert window.windowTitle().startswith("untitled •")
    assert window.files._write_project(project)
    assert window.windowTitle() == "scene.glidestudio — GLIDE Studio"

    other = open_window(qtbot, tmp_path / "second", FakeEngine(), starter_scene(32))
    try:
        dialogs.answer = QMessageBox.StandardButton.Yes
        assert other.files.open_path(exported)
        assert ("question", "Restore parameters?") == dialogs.shown[-1][:2]
        assert np.array_equal(other.controller.document.picture, controller.document.picture)
        restored = other.controls.run_settings()
        request = restored.request
        assert (request.prompt, request.steps, request.seed) == ("a purple triangle", 7, 1234)
        assert not restored.random_seed

        assert other.files.open_path(project)
        assert len(other.controller.history) == 2
        assert np.array_equal(other.controller.document.picture, controller.document.picture)
        assert other.controls.caption.text() == "a purple triangle"
    finally:
        other.close()


def test_a_corrupt_picture_gives_a_message_and_keeps_the_work(qtbot, window, tmp_path, dialogs):
    before = window.controller.document.picture.copy()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert not window.files.open_path(broken)
    kind, title, text = dialogs.shown[-1]
    assert kind == "warning" and "broken.jpg" in text
    assert np.array_equal(window.controller.document.picture, before)


def test_model_failure_is_reported_and_nothing_is_lost(qtbot, tmp_path, dialogs):
    engine = FakeEngine(fail_with=RuntimeError("CUDA out of memory"))
    window = open_window(qtbot, tmp_path, engine, starter_scene(64))
    try:
        paint_stroke(qtbot, window, [(20, 20), (30, 30)])
        mask = window.controller.document.mask_array()
        with qtbot.waitSignal(window.controller.run_failed, timeout=5000):
            window.run()
        assert any("out of memory" in text for _kind, _title, text in dialogs.shown)
        assert np.array_equal(window.controller.document.mask_array(), mask)
        assert window.controls.run_button.isEnabled()
    finally:
        window.close()


def test_screenshot_mid_run(qtbot, window, qapp):
    ARTIFACTS.mkdir(exist_ok=True)
    apply_dark_theme(qapp)
    window.controls.caption.setText("a yellow star above the red circle")
    window.controller.engine.step_delay = 0.1
    window.controls.fields.widgets["batch"].setValue(3)
    paint_stroke(qtbot, window, [(14, 14), (24, 20), (30, 30)])
    seen = []
    window.controller.run_step.connect(seen.append)
    window.run()
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=5000)
    path = ARTIFACTS / "main_window_midrun.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 10_000
    window.cancel()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=5000)


def test_a_crashed_window_is_offered_back_up_to_its_last_stroke(qtbot, tmp_path, dialogs):
    import shutil

    first = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), starter_scene(64))
    paint_stroke(qtbot, first, [(20, 20), (30, 30)])
    with qtbot.waitSignal(first.controller.run_finished, timeout=10000):
        run_with_keys(qtbot, first, "kept across a crash")
    first.accept()
    paint_stroke(qtbot, first, [(40, 40), (50, 44)])  # the last stroke before the "crash"
    folder = first.session.folder
    crash_copy = tmp_path / "crash-copy"
    shutil.copytree(folder, crash_copy)  # the journal as a killed process leaves it (WAL included)
    digest = first.controller.state_digest()
    first.close()
    assert not folder.exists()  # a clean close leaves nothing to recover
    shutil.copytree(crash_copy, folder)

    second = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    try:
        assert second.pending_recovery == folder
        dialogs.answer = QMessageBox.StandardButton.Yes
        assert second.files.offer_recovery(second.pending_recovery)
        assert second.controller.state_digest() == digest
        assert second.controller.history.current.caption == "kept across a crash"
        assert second.files.project_path is None and second.files.has_unsaved_edits
        assert second.session.folder == folder
    finally:
        second.close()


def test_sketch_mode_sends_strokes_discard_keeps_the_picture_and_settings_persist(qtbot, tmp_path, dialogs):
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), starter_scene(64))
    window.controls.mode.setCurrentIndex(window.controls.mode.findData("sdedit"))
    window.run()
    assert "Sketch some strokes" in window.statusBar().currentMessage()
    window.tools.choose(Tool.SKETCH)
    window.tools.set_colour(QColor(0, 200, 0))
    window.canvas.set_brush_size(6)
    paint_stroke(qtbot, window, [(10, 50), (40, 50)])
    window.controls.fields.widgets["steps"].setValue(4)
    with qtbot.waitSignal(window.controller.run_finished, timeout=10000) as finished:
        run_with_keys(qtbot, window, "a green line")
    request = finished.args[0].request
    assert request.mode.value == "sdedit" and request.mask is None
    assert tuple(request.sketch[50, 25]) == (0, 200, 0, 255)
    before = window.controller.document.picture.copy()
    window.candidates.discard_button.click()
    assert window.candidates.count() == 0 and len(window.controller.history) == 1
    assert np.array_equal(window.controller.document.picture, before)
    window.close()

    reopened = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(64))
    try:
        request = reopened.controls.run_settings().request
        assert (request.prompt, request.mode.value, request.steps) == ("a green line", "sdedit", 4)
    finally:
        reopened.close()


def test_wheel_zooms_and_ctrl0_fits(qtbot, window):
    from PySide6.QtCore import QPoint as Point
    from PySide6.QtGui import QWheelEvent

    canvas = window.canvas
    fitted = canvas.zoom
    centre = QPointF(canvas.viewport().rect().center())
    wheel = QWheelEvent(
        centre,
        canvas.viewport().mapToGlobal(centre),
        Point(),
        Point(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas.viewport(), wheel)
    assert canvas.zoom == pytest.approx(fitted * 1.15**2)
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(fitted)
