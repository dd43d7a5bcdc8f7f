"""Live painting: strokes start quick runs, the newest input wins, runs never pile up, the GUI keeps painting."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF
from window_helpers import open_window

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import Request


def _stroke(canvas, points) -> None:
    canvas._begin_stroke(QPointF(*points[0]))
    for end in points[1:]:
        canvas._paint_segment(canvas._last_point, QPointF(*end))
        canvas._last_point = QPointF(*end)
    canvas._end_stroke()


def test_a_series_of_strokes_shows_the_last_strokes_result_and_runs_never_pile_up(qtbot, tmp_path):
    engine = FakeEngine(step_delay=0.01)
    window = open_window(qtbot, tmp_path, engine, np.full((64, 64, 3), 90, np.uint8))
    controller, live = window.controller, window.live
    controller.set_run_settings(RunSettings(Request(prompt="a red circle", steps=20, batch=2)), announce=True)
    queued = []
    original_submit = controller.runner.submit
    controller.runner.submit = lambda job: queued.append(len(controller.runner._queue)) or original_submit(job)
    live._idle.setInterval(60_000)  # no full-quality redo during this test
    window.live_action.trigger()
    assert live.enabled
    canvas = window.canvas
    canvas.set_brush_size(6)
    for number in range(8):
        _stroke(canvas, [(8 + 6 * number, 10), (8 + 6 * number, 50)])
        qtbot.wait(15)  # faster than a run: most runs are cancelled and replaced
    qtbot.waitUntil(lambda: live.latest is not None and controller.runner.current_job is None
                    and live._wanted is None and live._job is None and not live._debounce.isActive(), timeout=10000)
    painted = controller.document.mask_array() > 0
    shown = live.latest.images[0]
    assert np.array_equal(shown[painted], np.broadcast_to(shown[painted][0], shown[painted].shape))
    assert not np.array_equal(shown[painted][0], [90, 90, 90]) and np.all(shown[~painted] == 90)  # the last mask
    assert live.latest.request.steps == 5 and live.latest.request.upsample_model is None  # live settings
    assert max(queued) == 0  # never a second run waiting behind the one in flight
    assert live.runs_started < 8 + 2  # coalesced, not one per stroke and more
    assert window.canvas.preview_item.isVisible()
    run = window.live.apply()
    assert run == 0 and controller.candidates is not None and len(controller.candidates) == 1
    window.live_action.trigger()
    assert not live.enabled and not window.canvas.preview_item.isVisible()
    controller.mark_saved()
    window.close()


def test_the_full_settings_redo_the_live_picture_once_the_painting_stops(qtbot, tmp_path, monkeypatch):
    from glide_studio.app import live as live_module

    monkeypatch.setattr(live_module, "FULL_AFTER_MS", 50)
    window = open_window(qtbot, tmp_path, FakeEngine(step_delay=0.0), np.full((32, 32, 3), 90, np.uint8), show=False)
    controller = window.controller
    controller.set_run_settings(RunSettings(Request(prompt="x", steps=20, upsample_steps=3)), announce=True)
    window.live._idle.setInterval(50)
    controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    window.live.set_enabled(True)
    qtbot.waitUntil(lambda: window.live.latest is not None and window.live.latest.request.steps == 20, timeout=10000)
    assert window.live.latest.request.upsample_model is not None
    window.live.set_enabled(False)
    controller.mark_saved()
    window.close()
