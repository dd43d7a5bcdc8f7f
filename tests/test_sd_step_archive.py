"""A Stable Diffusion run's steps on disk: its states (the latent, the scheduler's snapshot, each candidate's
generator, the sketch-to-image start picture) are read back from the step archive and resume bit for bit, with
every scheduler, so an SD run restored after a restart can be forked from as a GLIDE run can."""

from __future__ import annotations

import numpy as np
import pytest
from sd_helpers import save_folder

from glide_studio.app.preview import to_uint8_images
from glide_studio.app.step_archive import StepArchive, TimelineStep
from glide_studio.pipelines.request import Mode, Request, Scheduler
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run
from glide_studio.sd.state import SDRunState

SIDE = 36


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = save_folder(tmp_path_factory.mktemp("sd") / "tiny-inpaint", seed=5)
    return load_model(f"sd:{folder}", "cpu", "fp32")


@pytest.fixture
def archive(qtbot, tmp_path):
    store = StepArchive.beside(tmp_path / "journal.sqlite")
    yield store
    store.close()


def sd_request(models, mode, scheduler):
    picture = np.random.default_rng(3).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[6:26, 8:30] = 255
    sketch = np.zeros((SIDE, SIDE, 4), np.uint8)
    sketch[8:20, 10:24] = (30, 200, 60, 255)
    inputs = {Mode.INPAINT: dict(image=picture, mask=mask), Mode.SDEDIT: dict(image=picture, mask=mask, sketch=sketch),
              Mode.GENERATE: {}}[mode]
    return Request(mode=mode, base_model=models.name, prompt="a green leaf", negative_prompt="blurry", steps=4,
                   seed=9, batch=2, guidance_scale=5.0, strength=0.7, scheduler=scheduler, **inputs)


@pytest.mark.parametrize("mode,scheduler,at", [(Mode.INPAINT, Scheduler.DPMPP_2M_KARRAS, 1),
                                               (Mode.SDEDIT, Scheduler.EULER_A, 2),
                                               (Mode.GENERATE, Scheduler.DDIM, 0),
                                               (Mode.SDEDIT, Scheduler.DPMPP_2M_KARRAS, 2)])
def test_an_sd_state_read_back_from_disk_resumes_bit_for_bit(models, archive, mode, scheduler, at):
    request = sd_request(models, mode, scheduler)
    steps = list(run(models, request))
    archive.put("sd-run", [TimelineStep(step.index, step.total, step.stage, to_uint8_images(step.pred_x0),
                                        step.state) for step in steps])
    assert archive.flush()
    stored = archive.timeline("sd-run")
    assert all(step.can_fork for step in stored)
    state = archive.load_state(stored[at])
    assert isinstance(state, SDRunState) and state.index == at and state.chain == steps[at].state.chain
    assert (state.start_image is None) == (mode != Mode.SDEDIT)
    resumed = list(run(models, request, resume=state))
    assert [step.index for step in resumed] == list(range(at + 1, len(steps)))
    assert np.array_equal(resumed[-1].final, steps[-1].final)
