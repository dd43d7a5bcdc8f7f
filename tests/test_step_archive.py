"""Steps of past runs on disk, the strength scrubber's restart, and the upsampler's preview, below the GUI: a state
read back from the journal resumes bit for bit, the size cap drops the oldest first, a kill -9 while steps are
written leaves every run whole or absent, a restart at a stored step's level is a fresh run from that level, and
the upsampler's preview starts on the base result and ends on its own prediction."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from pipeline_helpers import request_for, tiny_model_set

from glide_studio.app.journal import Journal
from glide_studio.app.preview import to_uint8_images
from glide_studio.app.step_archive import STEPS_FILE, StepArchive, TimelineStep
from glide_studio.app.stills import over_base
from glide_studio.app.worker import _preview_of
from glide_studio.pipelines import inpaint, sdedit
from glide_studio.pipelines.chains import start_over
from glide_studio.pipelines.request import Mode


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


@pytest.fixture(scope="module")
def base_only(reference_dir):
    return tiny_model_set(reference_dir, upsample=None)


def _kept(steps) -> list[TimelineStep]:
    return [TimelineStep(step.index, step.total, step.stage, to_uint8_images(step.pred_x0), step.state.to("cpu"))
            for step in steps]


@pytest.fixture
def archive(qtbot, tmp_path):
    store = StepArchive.beside(tmp_path / "journal.sqlite")
    yield store
    store.close()


@pytest.mark.parametrize("mode,sampler,at", [(Mode.SDEDIT, "dpm++2m", 1), (Mode.INPAINT, "dpm++2m-sde", 5),
                                             (Mode.GENERATE, "ancestral", 2), (Mode.INPAINT, "ddim", 4)])
def test_a_state_read_back_from_disk_resumes_bit_for_bit(models, archive, mode, sampler, at):
    from glide_studio.pipelines import generate

    pipeline = {Mode.SDEDIT: sdedit, Mode.INPAINT: inpaint, Mode.GENERATE: generate}[mode]
    request = request_for(mode, sampler=sampler)
    steps = list(pipeline.run(models, request))
    archive.put("run-a", _kept(steps))
    assert archive.flush()
    stored = archive.timeline("run-a")
    assert [step.index for step in stored] == [step.index for step in steps]
    assert all(np.array_equal(back.preview, to_uint8_images(step.pred_x0)) for back, step in zip(stored, steps,
                                                                                                  strict=True))
    state = archive.load_state(stored[at])  # paused inside the upsampler's stage at 5 (4 base + 3 upsample steps)
    assert state.stage == steps[at].state.stage and state.level == steps[at].state.level
    resumed = list(pipeline.run(models, request, resume=state))
    assert [step.index for step in resumed] == list(range(at + 1, len(steps)))
    assert np.array_equal(resumed[-1].final, steps[-1].final)


def test_the_cap_drops_the_oldest_runs_states_first_then_their_previews(base_only, archive):
    request = request_for(Mode.INPAINT, sampler="dpm++2m", upsample_model=None)
    runs = {}
    for seed in range(4):
        runs[f"run-{seed}"] = _kept(_inpaint_steps(base_only, request.with_(seed=seed)))
        archive.put(f"run-{seed}", runs[f"run-{seed}"])
        assert archive.flush()
    whole = archive.size_bytes()
    previews = sum(len(step.preview.tobytes()) for steps in runs.values() for step in steps)
    assert archive.runs() == list(runs)
    archive.set_cap(whole * 3 // 4)  # room for all previews and some states: the oldest states go
    assert archive.flush() and archive.size_bytes() <= whole * 3 // 4
    states = [sum(step.stored.state is not None for step in archive.timeline(run)) for run in runs]
    assert states[0] == 0 and states[-1] == len(runs["run-3"])  # oldest first, the newest kept whole
    assert archive.runs() == list(runs)  # every run can still be scrubbed
    archive.set_cap(previews // 8)  # not even the previews fit: older runs go entirely
    assert archive.flush()
    assert archive.runs()[-1] == "run-3" and "run-0" not in archive.runs()
    assert archive.load_state(archive.timeline("run-3")[1]) is None  # beyond the cap, the newest keeps previews


def _inpaint_steps(models, request):
    return list(inpaint.run(models, request))


_WRITER = textwrap.dedent("""
    import sys, numpy as np, torch
    from PySide6.QtCore import QCoreApplication
    app = QCoreApplication([])
    from glide_studio.app.journal import Journal
    from glide_studio.app.step_archive import STEPS_FILE, StepArchive, TimelineStep
    from glide_studio.app.fake_engine import FakeState
    journal = Journal(sys.argv[1])
    archive = StepArchive.beside(journal.path, cap_bytes=40 * 2**20)
    rng = np.random.default_rng(0)
    for run in range(10_000):
        steps = [TimelineStep(index, 12, "base", rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8),
                              FakeState(index + 1, torch.from_numpy(rng.integers(0, 256, 300_000, dtype=np.uint8))))
                 for index in range(12)]
        archive.put(f"run-{run}", steps)
        archive.flush()
        print("archived", run, flush=True)
""")


def test_kill_9_while_steps_are_written_leaves_every_run_whole_or_absent(tmp_path):
    path = tmp_path / "journal.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1"}
    rng = random.Random(7)
    archived = 0
    for _kill in range(5):
        process = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True,
                                   env=env)
        process.stdout.readline()  # one run written: the next is being written when the kill comes
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        db = sqlite3.connect(path.with_name(STEPS_FILE))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = [count for (count,) in db.execute("SELECT COUNT(*) FROM steps GROUP BY run")]
        assert counts and set(counts) == {12}  # no run half-written
        referenced = db.execute("SELECT COUNT(*) FROM steps WHERE preview NOT IN (SELECT digest FROM step_blobs) "
                                "OR (state IS NOT NULL AND state NOT IN (SELECT digest FROM step_blobs))").fetchone()
        assert referenced[0] == 0  # every row's blobs are there
        archived = max(archived, len(counts))
        db.close()
    assert archived >= 1
    journal = Journal(path)  # the journal itself opens as usual afterwards
    assert journal.count() == 0
    journal.close()


# -- the strength scrubber ----------------------------------------------------------------------------------

def test_restarting_at_a_stored_steps_level_is_a_fresh_run_from_that_level(base_only):
    """Evenly-in-t DDIM steps of 100: the run at strength 800/999 passes through level 500 after its third step, so
    starting over there with the run's start noise is the run at strength 500/999 with 6 steps, bit for bit,
    without running the first three steps again."""
    request = request_for(Mode.SDEDIT, sampler="ddim", steps=9, strength=800 / 999, upsample_model=None)
    stored = list(sdedit.run(base_only, request))
    assert [round(step.state.level * 999) for step in stored] == [700, 600, 500, 400, 300, 200, 100, 0, 0]
    restarted = list(sdedit.run(base_only, request, resume=start_over(stored[2].state)))
    assert [step.index for step in restarted] == list(range(3, 9))
    fresh = list(sdedit.run(base_only, request.with_(strength=500 / 999, steps=6)))
    assert np.array_equal(restarted[-1].final, fresh[-1].final)
    assert not np.array_equal(restarted[-1].final, stored[-1].final)
    other = list(sdedit.run(base_only, request.with_(seed=request.seed + 1), resume=start_over(stored[2].state)))
    assert not np.array_equal(other[-1].final, restarted[-1].final)  # the start noise comes from the seed


def test_a_restart_lower_down_keeps_more_of_the_sketch(base_only):
    request = request_for(Mode.SDEDIT, sampler="dpm++2m", steps=8, strength=0.9, upsample_model=None)
    stored = list(sdedit.run(base_only, request))
    sketch = request.sketch[..., 3] > 0
    target = request.sketch[..., :3][sketch].astype(int)

    def distance(final) -> float:
        return float(np.abs(final[0][sketch].astype(int) - target).mean())

    late = list(sdedit.run(base_only, request, resume=start_over(stored[-3].state)))[-1].final
    assert distance(late) < distance(stored[-1].final)
    outside = request.mask == 0
    assert np.array_equal(late[0][outside], request.image[outside])


# -- the upsampler's preview ---------------------------------------------------------------------------------

def test_the_upsamplers_preview_starts_on_the_base_result_and_ends_on_its_prediction(models):
    request = request_for(Mode.INPAINT, sampler="dpm++2m", upsample_steps=4, upsample_strength=1.0)  # from noise
    steps = [step for step in inpaint.run(models, request) if step.stage == "upsample"]
    base = steps[0].state.previous
    scaled = over_base(to_uint8_images(steps[0].pred_x0), base, 0.0)
    first = _preview_of(steps[0], "x_t").astype(int)
    noise = to_uint8_images(steps[0].x_t).astype(int)
    assert np.abs(first - scaled).mean() < 0.5 * np.abs(noise - scaled).mean()  # the picture, not noise
    assert np.array_equal(_preview_of(steps[-1], "x_t"), to_uint8_images(steps[-1].pred_x0))
    assert np.array_equal(_preview_of(steps[0], "pred_x0"), _preview_of(steps[0], "x_t"))
    base_steps = [step for step in inpaint.run(models, request) if step.stage == "base"]
    assert np.array_equal(_preview_of(base_steps[0], "x_t"), to_uint8_images(base_steps[0].x_t))

