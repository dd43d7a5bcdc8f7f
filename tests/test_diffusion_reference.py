"""Replaying OpenAI's recorded sampling runs (sampling.pt sections b-e) with our samplers and wrappers."""

from __future__ import annotations

import json

import pytest
import torch

from glide_studio import models
from glide_studio.diffusion import (
    Conditioning,
    Diffusion,
    NoiseSource,
    ancestral_sample,
    classifier_free_guidance,
    clip_guidance,
    clip_text_embedding,
    ddim_reverse_step,
    ddim_sample,
    paste_known_pixels,
)

SAMPLE_ATOL = 2e-4
PRED_XSTART_ATOL = 1e-3


@pytest.fixture(scope="module")
def sampling(reference_dir):
    return torch.load(reference_dir / "sampling.pt", weights_only=True)


def load_unet(reference_dir, name):
    options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
    model = models.build_model(options)
    models.load_weights(model, reference_dir / f"{name}.pt")
    return model.eval()


def load_clip(reference_dir, name, builder):
    options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
    encoder = builder(options)
    models.load_weights(encoder, reference_dir / f"{name}.pt")
    return encoder.eval()


class Recorder:
    """Wraps a denoiser and keeps what it was given and what it returned."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.timesteps: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def __call__(self, x, timesteps, **kwargs):
        output = self.denoiser(x, timesteps, **kwargs)
        self.timesteps.append(timesteps.clone())
        self.outputs.append(output.clone())
        return output


def assert_close(actual, expected, atol, what):
    error = (actual - expected).abs().max().item()
    assert error <= atol, f"{what}: max abs error {error:.3g} > {atol}"


def test_inpaint_base_trajectory_b(reference_dir, sampling):
    s = {k[2:]: v for k, v in sampling.items() if k.startswith("b.")}
    model = load_unet(reference_dir, "tiny-base-inpaint")
    diffusion = Diffusion("squaredcos_cap_v2", "25")
    guided = Recorder(classifier_free_guidance(model, float(s["guidance_scale"])))
    kwargs = dict(tokens=s["tokens"], mask=s["mask"], inpaint_image=s["inpaint_image"],
                  inpaint_mask=s["inpaint_mask"])
    noise = NoiseSource.from_recorded([s["initial_noise"], *s["step_noise"]])
    conditioning = Conditioning(kwargs, denoised_fn=paste_known_pixels(s["inpaint_image"], s["inpaint_mask"]))
    steps = list(ancestral_sample(guided, diffusion, noise, shape=s["initial_noise"].shape,
                                  conditioning=conditioning))
    assert noise.remaining == 0
    assert [step.t for step in steps] == s["t"].tolist()
    for k, step in enumerate(steps):
        assert torch.equal(guided.timesteps[k], s["model_timesteps"][k].repeat(2))
        assert_close(guided.outputs[k], s["model_fn_output"][k], SAMPLE_ATOL, f"model_fn_output[{k}]")
        assert_close(step.mean, s["mean"][k], SAMPLE_ATOL, f"mean[{k}]")
        assert_close(step.log_variance, s["log_variance"][k], SAMPLE_ATOL, f"log_variance[{k}]")
        assert_close(step.pred_xstart, s["pred_xstart"][k], PRED_XSTART_ATOL, f"pred_xstart[{k}]")
        assert_close(step.sample, s["sample"][k], SAMPLE_ATOL, f"sample[{k}]")
    assert_close(steps[-1].sample[:1], s["final_samples"], SAMPLE_ATOL, "final_samples")


def test_inpaint_upsample_trajectory_c(reference_dir, sampling):
    s = {k[2:]: v for k, v in sampling.items() if k.startswith("c.")}
    model = Recorder(load_unet(reference_dir, "tiny-upsample-inpaint"))
    diffusion = Diffusion("linear", "fast27")
    kwargs = dict(tokens=s["tokens"], mask=s["mask"], low_res=s["low_res"],
                  inpaint_image=s["inpaint_image"], inpaint_mask=s["inpaint_mask"])
    assert torch.equal(s["initial_noise"], s["noise_raw"] * float(s["upsample_temp"]))
    noise = NoiseSource.from_recorded(s["step_noise"])
    conditioning = Conditioning(kwargs, denoised_fn=paste_known_pixels(s["inpaint_image"], s["inpaint_mask"]))
    steps = list(ancestral_sample(model, diffusion, noise, x_T=s["initial_noise"], conditioning=conditioning))
    assert noise.remaining == 0
    assert [step.t for step in steps] == s["t"].tolist()
    assert torch.equal(torch.cat(model.timesteps), s["model_timesteps"])
    for k, step in enumerate(steps):
        assert_close(step.pred_xstart, s["pred_xstart"][k], PRED_XSTART_ATOL, f"pred_xstart[{k}]")
        assert_close(step.sample, s["sample"][k], SAMPLE_ATOL, f"sample[{k}]")
    assert_close(steps[-1].sample, s["final_samples"], SAMPLE_ATOL, "final_samples")


def test_ddim_trajectory_and_reverse_step_d(reference_dir, sampling):
    s = {k[2:]: v for k, v in sampling.items() if k.startswith("d.")}
    model = load_unet(reference_dir, "tiny-base")
    diffusion = Diffusion("squaredcos_cap_v2", "25")
    guided = classifier_free_guidance(model, float(s["guidance_scale"]))
    kwargs = dict(tokens=s["tokens"], mask=s["mask"])
    noise = NoiseSource.from_recorded(s["step_noise"])
    steps = list(ddim_sample(guided, diffusion, noise, eta=float(s["eta"]), x_T=s["x_T"],
                             conditioning=Conditioning(kwargs)))
    assert noise.remaining == 0
    assert [step.t for step in steps] == s["t"].tolist()
    for k, step in enumerate(steps):
        assert_close(step.pred_xstart, s["pred_xstart"][k], PRED_XSTART_ATOL, f"pred_xstart[{k}]")
        assert_close(step.sample, s["sample"][k], SAMPLE_ATOL, f"sample[{k}]")

    sample, pred_xstart = ddim_reverse_step(guided, diffusion, s["reverse.x"], s["reverse.t"],
                                            conditioning=Conditioning(kwargs))
    assert_close(sample, s["reverse.sample"], SAMPLE_ATOL, "reverse.sample")
    assert_close(pred_xstart, s["reverse.pred_xstart"], PRED_XSTART_ATOL, "reverse.pred_xstart")


@pytest.fixture(scope="module")
def clip_models(reference_dir):
    image = load_clip(reference_dir, "tiny-clip-image-enc", models.build_clip_image_encoder)
    text = load_clip(reference_dir, "tiny-clip-text-enc", models.build_clip_text_encoder)
    return image, text


def test_clip_text_embedding_matches_recorded_z_t(reference_dir, sampling, clip_models):
    entries = json.loads((reference_dir / "tokens.json").read_text())["prompts"]
    prompts = {p["prompt"]: p["clip"] for p in entries}
    rows = [prompts["an oil painting of a corgi"], prompts["a corgi in a field"]]
    tokens = torch.tensor([row["padded_tokens"] for row in rows])
    text_len = torch.tensor([row["text_len"] for row in rows])
    z_t = clip_text_embedding(clip_models[1], tokens, text_len)
    assert_close(z_t, sampling["e.cond_fn.z_t"], 1e-5, "z_t")


def test_clip_cond_fn_gradient_e(sampling, clip_models):
    cond_fn = clip_guidance(clip_models[0], sampling["e.cond_fn.z_t"], float(sampling["e.grad_scale"]),
                            logit_scale=sampling["e.logit_scale"])
    grad = cond_fn(sampling["e.cond_fn.x"], sampling["e.cond_fn.t"])
    expected = sampling["e.cond_fn.grad"]
    error = (grad - expected).abs() - 1e-4 * expected.abs()
    assert error.max().item() <= 2e-6, (grad - expected).abs().max().item()


def _guided_step(reference_dir, sampling, clip_models, sampler):
    s = {k[2:]: v for k, v in sampling.items() if k.startswith("e.")}
    model = load_unet(reference_dir, "tiny-base")
    diffusion = Diffusion("squaredcos_cap_v2", "100")
    assert diffusion.model_timesteps(s["step.t"]).tolist() == s["step.model_t"].tolist()
    cond_fn = Recorder(clip_guidance(clip_models[0], s["cond_fn.z_t"][:1], float(s["grad_scale"]),
                                     logit_scale=s["logit_scale"]))
    noise_key = "step.noise" if sampler is ancestral_sample else "ddim_step.noise"
    noise = NoiseSource.from_recorded([s[noise_key]])
    conditioning = Conditioning(dict(tokens=s["step.tokens"], mask=s["step.mask"]), cond_fn=cond_fn)
    step = next(sampler(model, diffusion, noise, x_T=s["step.x"], t_start=int(s["step.t"]),
                        conditioning=conditioning))
    assert noise.remaining == 0 and step.t == int(s["step.t"])
    assert torch.equal(cond_fn.timesteps[0], s["step.model_t"])
    return s, step, cond_fn


def test_clip_guided_ancestral_step_e(reference_dir, sampling, clip_models):
    s, step, cond_fn = _guided_step(reference_dir, sampling, clip_models, ancestral_sample)
    assert_close(cond_fn.outputs[0], s["step.grad"], 1e-5, "step.grad")
    assert_close(step.log_variance, s["step.log_variance"], 1e-5, "log_variance")
    assert_close(step.pred_xstart, s["step.pred_xstart"], 1e-5, "pred_xstart")
    assert_close(step.mean, s["step.mean_guided"], 1e-5, "mean_guided")
    assert_close(step.sample, s["step.sample"], 1e-5, "sample")


def test_clip_guided_ddim_step_e(reference_dir, sampling, clip_models):
    s, step, _ = _guided_step(reference_dir, sampling, clip_models, ddim_sample)
    assert_close(step.pred_xstart, s["ddim_step.pred_xstart"], 1e-5, "ddim pred_xstart")
    assert_close(step.sample, s["ddim_step.sample"], 1e-5, "ddim sample")
