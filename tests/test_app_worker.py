"""The worker thread: signal order, throttling, cancellation within one step, failures, clean shutdown."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.worker import Job, JobRunner
from glide_studio.pipelines.request import Mode, Request


def _request(steps: int = 5, batch: int = 2) -> Request:
    picture = np.full((32, 32, 3), 90, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    return Request(mode=Mode.INPAINT, prompt="a red circle", image=picture, mask=mask, steps=steps, batch=batch, seed=3)


@pytest.fixture
def runner(qtbot):
    engine = FakeEngine(step_delay=0.01)
    runner = JobRunner(engine, min_interval=0.0)
    yield runner
    assert runner.shutdown(5000)


def _record(runner: JobRunner) -> list:
    events: list = []
    runner.job_started.connect(lambda job_id: events.append(("started", job_id)))
    runner.job_step.connect(lambda progress: events.append(("step", progress)))
    runner.job_finished.connect(lambda result: events.append(("finished", result)))
    runner.job_failed.connect(lambda job_id, message: events.append(("failed", message)))
    runner.job_cancelled.connect(lambda job_id: events.append(("cancelled", job_id)))
    return events


def test_signals_arrive_in_order_with_small_uint8_previews_and_final_results(qtbot, runner):
    events = _record(runner)
    job = Job(_request(steps=5, batch=2))
    with qtbot.waitSignal(runner.job_finished, timeout=5000):
        runner.submit(job)
    kinds = [kind for kind, _ in events]
    assert kinds == ["started"] + ["step"] * 5 + ["finished"]
    steps = [payload for kind, payload in events if kind == "step"]
    assert [progress.index for progress in steps] == [0, 1, 2, 3, 4]
    assert all(progress.total == 5 and progress.job_id == job.id for progress in steps)
    for progress in steps:
        assert isinstance(progress.preview, np.ndarray)  # never a tensor
        assert progress.preview.dtype == np.uint8 and progress.preview.shape == (2, 16, 16, 3)
    result = events[-1][1]
    assert result.images.shape == (2, 32, 32, 3) and result.images.dtype == np.uint8
    assert runner.engine.run_threads[0] is not __import__("threading").main_thread()
    assert not runner.busy


def test_throttle_skips_previews_but_never_progress_or_the_final(qtbot):
    runner = JobRunner(FakeEngine(step_delay=0.0), min_interval=60.0)
    steps = []
    runner.job_step.connect(steps.append)
    try:
        with qtbot.waitSignal(runner.job_finished, timeout=5000):
            runner.submit(Job(_request(steps=8)))
    finally:
        assert runner.shutdown(5000)
    assert [progress.index for progress in steps] == list(range(8))
    with_preview = [progress.index for progress in steps if progress.preview is not None]
    assert with_preview == [0, 7]


def test_cancel_after_first_step_stops_within_one_step_and_closes_the_generator(qtbot, runner):
    runner.engine.step_delay = 0.05
    events = _record(runner)
    first_step, computed_at_cancel = [], []

    def cancel_on_first(progress):
        if not first_step:
            first_step.append(progress.index)
            computed_at_cancel.append(runner.engine.steps_computed)
            runner.cancel()

    runner.job_step.connect(cancel_on_first)
    with qtbot.waitSignal(runner.job_cancelled, timeout=5000):
        runner.submit(Job(_request(steps=20)))
    assert first_step == [0]
    assert runner.engine.steps_computed <= computed_at_cancel[0] + 1  # at most the step under way
    assert runner.engine.closed_runs == 1
    assert [kind for kind, _ in events][-1] == "cancelled"
    assert "finished" not in [kind for kind, _ in events]


def test_queued_jobs_run_one_at_a_time_in_order(qtbot, runner):
    finished = []
    runner.job_finished.connect(lambda result: finished.append(result.job_id))
    jobs = [Job(_request(steps=2, batch=1)) for _ in range(3)]
    for job in jobs:
        runner.submit(job)
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=5000)
    assert finished == [job.id for job in jobs]


def test_out_of_memory_becomes_a_readable_message(qtbot):
    runner = JobRunner(FakeEngine(fail_with=RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")))
    try:
        with qtbot.waitSignal(runner.job_failed, timeout=5000) as blocker:
            runner.submit(Job(_request()))
    finally:
        assert runner.shutdown(5000)
    message = blocker.args[1]
    assert "ran out of memory" in message and "fewer candidates" in message
    assert not runner.busy


def test_shutdown_mid_run_ends_the_thread(qtbot):
    engine = FakeEngine(step_delay=0.05)
    runner = JobRunner(engine)
    with qtbot.waitSignal(runner.job_step, timeout=5000):
        runner.submit(Job(_request(steps=100)))
    assert runner.shutdown(5000)
    assert not runner.is_running()
    assert engine.steps_computed < 100


def test_prepare_warms_the_networks_without_making_the_runner_busy(qtbot, runner):
    prepared = []
    runner.job_prepared.connect(lambda job_id, problem: prepared.append((job_id, problem)))
    job = Job(_request(), device="cpu")
    with qtbot.waitSignal(runner.job_prepared, timeout=5000):
        runner.prepare(job)
        assert not runner.busy  # the user can start a run meanwhile; it queues behind the warm-up
    assert prepared == [(job.id, "")]
    assert runner.engine.prepared == [("demo-base-inpaint", "cpu")]
    assert runner.engine.requests == []  # nothing ran


def test_a_run_submitted_during_prepare_runs_after_it(qtbot, runner):
    order = []
    runner.job_prepared.connect(lambda *_: order.append("prepared"))
    runner.job_started.connect(lambda *_: order.append("started"))
    with qtbot.waitSignal(runner.job_finished, timeout=5000):
        runner.prepare(Job(_request()))
        runner.submit(Job(_request(steps=2)))
    assert order == ["prepared", "started"]


def test_a_failed_prepare_is_reported_and_the_runner_still_works(qtbot):
    engine = FakeEngine(step_delay=0.0)
    engine.prepare_error = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    runner = JobRunner(engine, min_interval=0.0)
    try:
        with qtbot.waitSignal(runner.job_prepared, timeout=5000) as blocker:
            runner.prepare(Job(_request()))
        assert "ran out of memory" in blocker.args[1]
        with qtbot.waitSignal(runner.job_finished, timeout=5000):
            runner.submit(Job(_request(steps=2)))
    finally:
        assert runner.shutdown(5000)
