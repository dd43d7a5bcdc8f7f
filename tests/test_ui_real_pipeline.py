"""Test 1 again on the real pipelines: mouse-painted mask, typed caption, Ctrl+Enter, a real inpaint.

Runs the shipped demo model, loaded the way the app loads it.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from glide_studio.app.engine import PipelineEngine
from glide_studio.app.starter import starter_scene
from glide_studio.ui.main_window import MainWindow


@pytest.fixture
def engine():
    return PipelineEngine()


def test_mouse_mask_caption_and_ctrl_enter_run_a_real_inpaint(qtbot, tmp_path, monkeypatch, engine):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args, **kwargs: shown.append(args[1:3]))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(engine, settings, picture=starter_scene(64), min_interval=0.0)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.canvas.fit()
    original = window.controller.document.picture.copy()
    controls = window.controls
    controls.fields.widgets["steps"].setValue(3)
    controls.fields.widgets["batch"].setValue(1)
    controls.upsample.setChecked(False)
    controls.random_seed.setChecked(False)

    viewport, left = window.canvas.viewport(), Qt.MouseButton.LeftButton
    window.canvas.set_brush_size(14)
    points = [window.canvas.mapFromScene(QPointF(x, y)) for x, y in ((16, 20), (28, 26), (40, 32))]
    qtbot.mousePress(viewport, left, pos=points[0])
    for point in points[1:]:
        qtbot.mouseMove(viewport, point)
    qtbot.mouseRelease(viewport, left, pos=points[-1])
    mask = window.controller.document.mask_array()
    assert mask[26, 28] == 255 and mask.mean() < 128

    steps, frames = [], []
    window.controller.run_step.connect(lambda progress: steps.append((progress.index, progress.total)))
    window.controller.run_step.connect(lambda _progress: frames.append(window.canvas.preview_frames))
    qtbot.keyClicks(controls.caption, "a green square")
    try:
        with qtbot.waitSignal(window.controller.run_finished, timeout=240_000) as finished:
            qtbot.keyClick(controls.caption, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    finally:
        assert not shown, shown
    total = steps[0][1]
    assert steps == [(index, total) for index in range(total)]
    assert frames == list(range(1, total + 1))
    results = finished.args[0].images
    assert results.shape == (1, 64, 64, 3)
    outside = mask == 0
    assert np.array_equal(results[0][outside], original[outside])
    assert not np.array_equal(results[0][~outside], original[~outside])
    window.accept()
    assert len(window.controller.history) == 2
    window.controller.mark_saved()  # nothing to ask about on close
    window.close()
    assert not window.controller.runner.is_running()


def test_prepare_loads_and_warms_the_real_engine_before_any_run(qtbot, tmp_path, engine):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(engine, settings, picture=starter_scene(64), min_interval=0.0)
    qtbot.addWidget(window)
    window.controls.upsample.setChecked(False)
    with qtbot.waitSignal(window.controller.runner.job_prepared, timeout=60_000) as blocker:
        window.controller.prepare()
    assert blocker.args[1] == ""
    assert [name for name, _ in engine._networks] == ["demo-base-inpaint"]
    assert engine._model_set is not None
    window.controller.shutdown(10_000)
