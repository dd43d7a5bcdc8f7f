"""The Stable Diffusion family on tiny random components built here, saved as a user's model is (a diffusers
folder, one .safetensors file) and loaded through the user's path: every mode and scheduler gives the picture's
size, keeps every unmasked pixel, repeats its pixels for a seed, previews every step, stops within a step when
cancelled and resumes bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sd_requests as requests
import torch
from sd_helpers import save_folder, save_single_file
from sd_requests import HEIGHT, WIDTH, mask, picture

from glide_studio.pipelines.request import Family, Mode, Request, Scheduler
from glide_studio.runs.drain import drain
from glide_studio.sd import SDError
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run
from glide_studio.sd.state import SDRunState


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd-models")
    folder = save_folder(root / "tiny-inpaint")
    single = save_single_file(folder, root / "tiny-inpaint-single.safetensors")
    return folder, single


@pytest.fixture(scope="module")
def models(model_files):
    return load_model(f"sd:{model_files[0]}", "cpu", "fp32")


def sd_request(mode: Mode, name: str, **changes) -> Request:
    return requests.sd_request(mode, name, **{"negative_prompt": "blurry", "steps": 4, "seed": 11, "strength": 0.6,
                                              **changes})


@pytest.mark.parametrize("mode,scheduler", list(itertools.product(
    (Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE), tuple(Scheduler))))
def test_every_mode_and_scheduler_keeps_the_unmasked_pixels_and_repeats_its_seed(models, mode, scheduler):
    request = sd_request(mode, models.name, scheduler=scheduler)
    assert request.family is Family.SD
    steps = []
    first = drain(run(models, request), steps.append)
    side = models.model_size // models.vae_scale
    assert [step.index for step in steps] == [0, 1, 2, 3] and {step.total for step in steps} == {4}
    assert [step.final is not None for step in steps] == [False, False, False, True]
    for step in steps:  # an RGB preview every step, at the latent's resolution, in [-1, 1]
        assert step.x_t.shape == step.pred_x0.shape == (2, 3, side, side)
        assert float(step.pred_x0.abs().max()) <= 1.0
    if mode == Mode.GENERATE:
        assert first.shape == (2, models.model_size, models.model_size, 3)
    else:
        assert first.shape == (2, HEIGHT, WIDTH, 3)
        kept = mask() == 0
        assert np.array_equal(first[:, kept], np.broadcast_to(picture()[kept], first[:, kept].shape))
        assert not np.array_equal(first[:, ~kept], np.broadcast_to(picture()[~kept], first[:, ~kept].shape))
    assert not np.array_equal(first[0], first[1])  # each candidate draws its own noise
    assert np.array_equal(drain(run(models, request)), first)
    assert not np.array_equal(drain(run(models, request.with_(seed=12))), first)


def test_generate_on_a_picture_fills_its_edit_box_and_leaves_the_rest(models):
    from glide_studio.pipelines.request import EditBox

    box = EditBox(5, 4, 30, 30)
    request = sd_request(Mode.GENERATE, models.name, image=picture(), edit_box=box, batch=1)
    result = drain(run(models, request))[0]
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[box.y:box.y + box.height, box.x:box.x + box.width] = False
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert np.array_equal(result[outside], picture()[outside])
    assert not np.array_equal(result[~outside], picture()[~outside])


def test_the_single_file_is_the_same_model_as_the_folder(models, model_files):
    single = load_model(f"sd:{model_files[1]}", "cpu", "fp32")
    for part in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(models, part).state_dict(), getattr(single, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)
    request = sd_request(Mode.INPAINT, models.name, batch=1)
    assert np.array_equal(drain(run(single, request.with_(base_model=single.name))), drain(run(models, request)))
    assert len(single.model_hash) == 10 and single.model_hash != models.model_hash


@pytest.mark.parametrize("scheduler", tuple(Scheduler))
def test_pausing_after_any_step_and_resuming_equals_never_pausing(models, scheduler):
    request = sd_request(Mode.SDEDIT, models.name, scheduler=scheduler, steps=5)
    whole = drain(run(models, request))
    for pause_after in (0, 2, 3):
        taken = list(itertools.islice(run(models, request), pause_after + 1))
        state = taken[-1].state.to("cpu")
        assert isinstance(state, SDRunState) and state.index == pause_after and state.size_bytes > 0
        rest = list(run(models, request, resume=state))
        assert [step.index for step in rest] == list(range(pause_after + 1, 5))
        assert np.array_equal(rest[-1].final, whole)


def test_strokes_painted_while_paused_take_effect_when_the_run_goes_on(models):
    request = sd_request(Mode.SDEDIT, models.name, steps=5, strength=0.8)
    paused = list(itertools.islice(run(models, request), 2))[-1].state
    unchanged = drain(run(models, request, resume=paused))
    sketch = request.sketch.copy()
    sketch[14:20, 16:24] = (20, 20, 230, 255)  # a blue stroke over part of the red one
    repainted = drain(run(models, request.with_(sketch=sketch), resume=paused))
    assert np.array_equal(unchanged, drain(run(models, request)))
    assert not np.array_equal(repainted, unchanged)
    kept = mask() == 0
    assert np.array_equal(repainted[:, kept], unchanged[:, kept])


def test_a_state_of_another_chain_or_mode_is_refused(models):
    request = sd_request(Mode.INPAINT, models.name)
    state = next(iter(run(models, request))).state
    with pytest.raises(SDError, match="another chain"):
        run(models, request.with_(steps=6), resume=state)
    with pytest.raises(SDError, match="mode inpaint"):
        run(models, sd_request(Mode.GENERATE, models.name), resume=state)


def test_cancelling_stops_within_one_step(models):
    calls = []
    hook = models.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        stopped = drain(run(models, sd_request(Mode.INPAINT, models.name, steps=6)), lambda step: step.index == 1)
    finally:
        hook.remove()
    assert stopped is None and len(calls) == 2  # one guided UNet call per step, none after the cancel


def test_bad_requests_are_clear_errors(models):
    from glide_studio.pipelines.request import Guidance

    with pytest.raises(SDError, match="classifier-free"):
        run(models, sd_request(Mode.INPAINT, models.name, guidance=Guidance.CLIP))
    with pytest.raises(SDError, match="not upsample"):
        run(models, sd_request(Mode.INPAINT, models.name).with_(mode=Mode.UPSAMPLE))
    with pytest.raises(SDError, match="needs a picture and a mask"):
        run(models, sd_request(Mode.INPAINT, models.name, mask=None))


def test_a_plain_unet_inpaints_by_keeping_the_known_latents(tmp_path):
    plain = load_model(f"sd:{save_folder(tmp_path / 'plain', in_channels=4)}", "cpu", "fp32")
    assert not plain.inpainting
    request = sd_request(Mode.INPAINT, plain.name, scheduler=Scheduler.EULER_A)
    result = drain(run(plain, request))
    kept = mask() == 0
    assert all(np.array_equal(one[kept], picture()[kept]) and not np.array_equal(one[~kept], picture()[~kept])
               for one in result)
    paused = list(itertools.islice(run(plain, request), 2))[-1].state
    assert np.array_equal(drain(run(plain, request, resume=paused)), result)


def test_the_preview_projection_follows_the_vae(models):
    """Latents of flat colours it was not fitted on project nearer those colours than a grey preview would be
    (even this random VAE's latents carry some colour; a real VAE's carry far more)."""
    from glide_studio.sd.preview import project

    colours = torch.tensor([[-0.8, -0.8, 0.8], [0.8, 0.0, -0.8]])
    side = 8 * models.vae_scale
    patches = colours[:, :, None, None].expand(-1, -1, side, side)
    with torch.no_grad():
        latents = models.vae.encode(patches).latent_dist.mean * models.scaling_factor
    shown = project(latents, models.preview_weight, models.preview_bias)[:, :, 2:-2, 2:-2].mean(dim=(2, 3))
    assert float((shown - colours).abs().mean()) < float(colours.abs().mean())


def test_bf16_runs_the_unet_and_text_encoder_in_bf16_and_still_keeps_the_unmasked_pixels(model_files):
    low = load_model(f"sd:{model_files[0]}", "cpu", "bf16")
    assert low.precision.name == "bf16" and low.unet.dtype == torch.bfloat16 and low.vae.dtype == torch.float32
    result = drain(run(low, sd_request(Mode.INPAINT, low.name, batch=1)))[0]
    kept = mask() == 0
    assert result.shape == (HEIGHT, WIDTH, 3) and np.array_equal(result[kept], picture()[kept])


def test_a_unet_of_another_kind_is_refused_by_name(tmp_path):
    import json

    folder = save_folder(tmp_path / "kandinsky-like", seed=4)
    config_file = folder / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config.update(addition_embed_type="image", encoder_hid_dim=16)
    config_file.write_text(json.dumps(config))
    with pytest.raises(SDError, match="another kind of model"):
        load_model(f"sd:{folder}", "cpu", "fp32")


@pytest.mark.parametrize("scheduler", tuple(Scheduler))
def test_sketch_strength_runs_the_steps_asked_for_from_lower_in_the_schedule(models, scheduler):
    from glide_studio.sd.pipeline import _timesteps
    from glide_studio.sd.schedulers import make_scheduler

    starts = []
    for strength in (1.0, 0.8, 0.5, 0.3):
        request = sd_request(Mode.SDEDIT, models.name, scheduler=scheduler, steps=10, strength=strength)
        timesteps = _timesteps(make_scheduler(scheduler, models.scheduler_config), request, "cpu")
        assert len(timesteps) == 10  # the steps asked for, whatever the strength
        starts.append(float(timesteps[0]))
    assert starts == sorted(starts, reverse=True) and starts[0] > 900 and starts[-1] < 300
