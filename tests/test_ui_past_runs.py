"""In the real window (offscreen): a paused run's gallery entry and its fork, an older run's steps scrubbed and
forked from after they were read back from the journal, and the strength scrubber re-running a sketch."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import tiny_engine, tiny_model_set
from PySide6.QtCore import Qt
from window_helpers import open_window

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.journal import Journal
from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.record import Resumed

PICTURE = np.full((32, 32, 3), 60, np.uint8)


def _fake_window(qtbot, tmp_path, name: str = "one", delay: float = 0.0, steps: int = 6):
    folder = tmp_path / name
    folder.mkdir()
    window = open_window(qtbot, folder, FakeEngine(step_delay=delay), PICTURE)
    window.controller.set_run_settings(RunSettings(Request(prompt="x", steps=steps, batch=1), random_seed=False),
                                       announce=True)
    window.controller.document.set_mask_array(np.pad(np.full((8, 8), 255, np.uint8), 12))
    return window


def _close(window) -> None:
    window.controller.mark_saved()
    window.close()


def _items(window) -> list[str]:
    return [window.gallery.list.item(row).text() for row in range(window.gallery.count())]


def test_a_paused_run_stays_in_the_gallery_and_its_fork_is_its_child(qtbot, tmp_path):
    window = _fake_window(qtbot, tmp_path, delay=0.05, steps=12)
    controller = window.controller
    window.run()
    qtbot.waitUntil(lambda: window.progress.value() >= 3, timeout=5000)
    with qtbot.waitSignal(controller.run_paused, timeout=5000) as paused:
        qtbot.keyClick(window.canvas, Qt.Key.Key_F8)
    step = paused.args[0].index
    assert _items(window) == ["‖1·1"]
    stopped = controller.runs[0]
    assert stopped.paused_at == (step, 12) and "Paused after step" in window.gallery.list.item(0).toolTip()
    inside = stopped.images[0][14, 14]
    assert not np.array_equal(inside, PICTURE[14, 14])  # the paused prediction is in the picture, in the mask
    assert np.array_equal(stopped.images[0][0, 0], PICTURE[0, 0])

    mask = controller.document.mask_array()
    mask[2:6, 2:6] = 255  # an edit while paused: going on is a fork
    controller.document.set_mask_array(mask)
    with qtbot.waitSignal(controller.run_finished, timeout=10000) as finished:
        qtbot.keyClick(window.canvas, Qt.Key.Key_F8)
    assert finished.args[0].record.resumed == Resumed(step, ("mask",))
    assert _items(window) == ["↳2·1", "‖1·1"]  # newest first: the fork, then the paused run it came from
    fork = controller.runs[1]
    assert fork.parent == 0 and controller.runs[0].paused_at == (step, 12)
    assert f"Fork of run 1 after step {step + 1}; changed: mask" in window.gallery.list.item(0).toolTip()

    rebuilt = _fake_window(qtbot, tmp_path, "two")
    rebuilt.controller.replay(Journal(controller.journal.path))  # both are journalled
    assert _items(rebuilt) == _items(window)
    assert rebuilt.controller.state_digest() == controller.state_digest()
    _close(rebuilt)
    _close(window)


def test_an_older_runs_steps_are_read_back_from_the_journal_to_scrub_and_fork(qtbot, tmp_path):
    window = _fake_window(qtbot, tmp_path)
    controller = window.controller
    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        window.run()
    first = [step.preview.copy() for step in controller.timeline]
    controller.set_run_settings(controller.run_settings.with_request(prompt="another colour"), announce=True)
    with qtbot.waitSignal(controller.run_finished, timeout=10000):
        window.run()
    assert controller.archive.flush()

    reopened = _fake_window(qtbot, tmp_path, "two")  # a restart: nothing of those runs is in memory
    again = reopened.controller
    again.replay(Journal(controller.journal.path))
    assert again.archive.runs() == [run.run_id for run in controller.runs]
    timeline = reopened.timeline
    assert timeline.label.text() == "Run 2 · base · step 6/6"  # the latest run's steps, as before the restart
    reopened.gallery.select(0, 0)  # the first run, in the gallery (listed last)
    assert timeline.label.text() == "Run 1 · base · step 6/6"
    assert all(step.state is None and step.can_fork for step in again.timeline)  # on disk until forked from
    assert all(np.array_equal(a, b.preview) for a, b in zip(first, again.timeline, strict=True))
    timeline.slider.setValue(2)
    assert reopened.canvas.preview_item.isVisible() and timeline.label.text() == "Run 1 · base · step 3/6"
    assert timeline.fork_button.isEnabled()
    with qtbot.waitSignal(again.run_finished, timeout=10000) as finished:
        timeline.fork_button.click()
    result = finished.args[0]
    assert result.record.resumed == Resumed(2, ("prompt",))  # the caption differs from run 1's; its pictures do not
    assert again.runs[-1].parent == 0
    assert [step.index for step in again.timeline] == list(range(6))
    _close(reopened)
    _close(window)


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir, upsample=None)


def test_the_strength_scrubber_reruns_a_sketch_sharing_the_steps_above(qtbot, tmp_path, models):
    picture = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    window = open_window(qtbot, tmp_path, tiny_engine(models), picture)
    controller = window.controller
    request = Request(mode=Mode.SDEDIT, prompt="a red circle", steps=8, batch=1, seed=3, sampler="dpm++2m",
                      strength=0.9, upsample_model=None)
    controller.set_run_settings(RunSettings(request, random_seed=False), announce=True)
    sketch = np.zeros((64, 64, 4), np.uint8)
    sketch[16:40, 16:40] = (230, 30, 30, 255)
    controller.document.set_sketch_array(sketch)
    with qtbot.waitSignal(controller.run_finished, timeout=30000):
        window.run()
    timeline = window.timeline
    assert timeline.strength_row.isVisibleTo(window) and timeline.strength_slider.value() == 90
    stored = list(controller.timeline)
    timeline.strength_slider.setValue(40)  # as a keyboard or groove click would: it settles, then re-runs
    start = controller.strength_start(0.40)
    assert start is not None and timeline.strength_hint.text() == f"shares steps 1–{start.index + 1}"
    with qtbot.waitSignal(controller.run_finished, timeout=30000) as finished:
        pass
    result = finished.args[0]
    assert result.record.resumed.step == start.index and "strength" in result.record.resumed.changed
    assert result.record.request.strength == pytest.approx(start.level, abs=1e-4)
    assert controller.runs[-1].parent == 0 and "Re-run of run 1 at strength" in controller.runs[-1].lineage()
    shared = controller.timeline[: start.index + 1]
    assert all(a is b for a, b in zip(shared, stored, strict=False))  # the steps above are the stored run's
    assert len(controller.timeline) == len(stored)
    painted = sketch[..., 3] > 0
    target = sketch[..., :3][painted].astype(int)
    closer = np.abs(result.images[0][painted].astype(int) - target).mean()
    farther = np.abs(controller.runs[0].images[0][painted].astype(int) - target).mean()
    assert closer < farther  # from a lower noise level the sketch shows through more
    assert controller.run_settings.request.strength == result.record.request.strength

    timeline.strength_slider.setValue(100)  # above where the run began: nothing stored there, a fresh run
    assert timeline.strength_hint.text() == "fresh run"
    with qtbot.waitSignal(controller.run_finished, timeout=30000) as finished:
        pass
    assert finished.args[0].record.resumed is None and finished.args[0].record.request.strength == 1.0
    assert finished.args[0].record.request.seed == 3  # the same start noise

    restarted = controller.runs[1]
    assert restarted.ran_with == {"strength": 0.9}  # recorded at its level, run on the stored run's chain
    window.gallery.select(1, 0)  # back to the re-run: its steps come back with the chain it ran
    assert controller.timeline_run_id == restarted.run_id
    with qtbot.waitSignal(controller.run_finished, timeout=30000) as finished:
        controller.fork_from(start.index + 1)
    assert finished.args[0].record.resumed == Resumed(start.index + 1, ())
    assert np.array_equal(finished.args[0].images, restarted.images)  # nothing changed: the same pixels
    _close(window)
