"""Candidates ranked by their match with the caption, a missed insertion flagged, and Retry this area."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import starter_scene
from glide_studio.pipelines.request import Mode
from glide_studio.runs.record import CandidateScore
from tests.window_helpers import open_window


@pytest.fixture
def window(qtbot, tmp_path):
    engine = FakeEngine(step_delay=0.0)
    window = open_window(qtbot, tmp_path, engine, starter_scene(64))
    yield window
    window.close()


def run_inpaint(qtbot, window, batch: int):
    mask = np.zeros(window.controller.document.picture.shape[:2], dtype=np.uint8)
    mask[20:36, 20:36] = 255
    window.controller.document.set_mask_array(mask)
    settings = window.controls.run_settings()
    window.controller.set_run_settings(replace(settings, request=settings.request.with_(
        mode=Mode.INPAINT, batch=batch, prompt="a red circle"), random_seed=False))
    with qtbot.waitSignal(window.controller.run_finished, timeout=10000) as finished:
        window.controller.generate()
    return finished.args[0]


def strip_order(window) -> list[int]:
    return [window.candidates.candidate_at(row) for row in range(window.candidates.count())]


def test_the_strip_and_gallery_put_the_best_match_first_and_flag_a_miss(qtbot, window):
    window.controller.runner.worker.engine.scores = (
        CandidateScore(0.10, background=0.30), CandidateScore(0.42, background=0.20),
        CandidateScore(0.25, background=0.22))
    result = run_inpaint(qtbot, window, batch=3)
    assert [score.similarity for score in result.scores] == [0.10, 0.42, 0.25]
    assert strip_order(window) == [1, 2, 0]
    labels = [window.candidates.list.item(row).text() for row in range(3)]
    assert labels == ["#2 · 0.42", "#3 · 0.25", "⚠ #1 · 0.10"]
    assert window.controller.viewed_candidate == 1  # the best one is shown first
    assert window.candidates.retry_button.isVisibleTo(window)
    gallery = [window.gallery.list.item(row).text() for row in range(window.gallery.count())]
    assert gallery == ["1·2", "1·3", "⚠ 1·1"]

    window.candidates.list.setCurrentRow(2)  # clicking the third thumbnail views candidate #1
    assert window.controller.viewed_candidate == 0


def test_retry_this_area_reruns_the_region_with_the_next_seeds(qtbot, window):
    window.controller.runner.worker.engine.scores = (CandidateScore(0.1, background=0.3),) * 2
    first = run_inpaint(qtbot, window, batch=2)
    window.controller.document.clear_mask()  # the run's own region is retried, whatever the layers are now
    with qtbot.waitSignal(window.controller.run_finished, timeout=10000) as finished:
        window.candidates.retry_button.click()
    retried = finished.args[0].request
    assert retried.seed == first.request.seed + 2
    assert np.array_equal(retried.mask, first.request.mask) and retried.prompt == "a red circle"
    assert len(window.controller.runs) == 2


def test_without_scores_the_run_order_stays_and_nothing_is_flagged(qtbot, window):
    run_inpaint(qtbot, window, batch=2)
    assert strip_order(window) == [0, 1]
    assert [window.candidates.list.item(row).text() for row in range(2)] == ["#1", "#2"]
    assert not window.candidates.retry_button.isVisibleTo(window)


def test_scores_survive_a_journal_replay(qtbot, window, tmp_path):
    window.controller.runner.worker.engine.scores = (CandidateScore(0.2, None), CandidateScore(0.5, None))
    run_inpaint(qtbot, window, batch=2)
    journal = window.controller.journal
    assert journal is not None
    replayed = open_window(qtbot, tmp_path / "second", FakeEngine(step_delay=0.0), starter_scene(64), show=False)
    replayed.controller.detach_journal()
    replayed.controller.replay(journal)
    assert replayed.controller.runs[-1].scores == (CandidateScore(0.2, None), CandidateScore(0.5, None))
    assert replayed.controller.runs[-1].kept() == [1, 0]
    replayed.close()
