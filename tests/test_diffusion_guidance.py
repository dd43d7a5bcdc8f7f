"""Guidance wrappers on a stand-in network whose output depends on every input row and kwarg."""

from __future__ import annotations

import torch

from glide_studio.diffusion import (
    Diffusion,
    classifier_free_guidance,
    clip_guidance,
    paired_classifier_free_guidance,
    paste_known_pixels,
)


def fake_network(x, timesteps, cond):
    """eps depends on x, t and a per-row conditioning value; variance values on the conditioning only."""
    eps = torch.tanh(x * cond.view(-1, 1, 1, 1) + timesteps.view(-1, 1, 1, 1) / 1000)
    var = torch.sin(cond).view(-1, 1, 1, 1).expand_as(x)
    return torch.cat([eps, var], dim=1)


def test_paired_cfg_gives_the_reference_first_half():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=gen)
    t = torch.tensor([500, 500, 500, 500])
    cond = torch.tensor([0.3, -0.7, 0.0, 0.0])  # two prompts, then two unconditional rows
    reference = classifier_free_guidance(fake_network, 4.0)(x, t, cond=cond)
    paired = paired_classifier_free_guidance(fake_network, 4.0)(x[:2], t[:2], cond=cond)
    assert torch.equal(paired, reference[:2])
    # both halves carry the same guided eps, each its own variance
    assert torch.equal(reference[:2, :3], reference[2:, :3])
    assert not torch.equal(reference[:2, 3:], reference[2:, 3:])
    # the second half of x is never read: the unconditional eps is computed on the first half
    unconditional = fake_network(x[:2], t[:2], torch.zeros(2))[:, :3]
    conditional = fake_network(x[:2], t[:2], cond[:2])[:, :3]
    assert torch.allclose(paired[:, :3], unconditional + 4.0 * (conditional - unconditional), atol=1e-6)
    assert torch.equal(paired[:, 3:], fake_network(x[:2], t[:2], cond[:2])[:, 3:])


def test_cfg_scale_one_is_the_conditional_model():
    x = torch.randn(2, 3, 4, 4)
    t = torch.tensor([10, 10])
    cond = torch.tensor([0.5, 0.0])
    guided = paired_classifier_free_guidance(fake_network, 1.0)(x[:1], t[:1], cond=cond)
    assert torch.allclose(guided, fake_network(x[:1], t[:1], cond[:1]), atol=1e-6)


def test_paste_known_pixels_keeps_known_and_passes_unknown():
    known_mask = torch.zeros(1, 1, 4, 4)
    known_mask[..., :2, :] = 1
    image = torch.full((1, 3, 4, 4), 0.25) * known_mask
    x0 = torch.full((1, 3, 4, 4), -0.5)
    out = paste_known_pixels(image, known_mask)(x0)
    assert torch.all(out[..., :2, :] == 0.25) and torch.all(out[..., 2:, :] == -0.5)


def test_known_pixels_are_pasted_before_the_clamp():
    diffusion = Diffusion("squaredcos_cap_v2", "10")
    known_mask = torch.ones(1, 1, 2, 2)
    paste = paste_known_pixels(torch.full((1, 3, 2, 2), 3.0), known_mask)
    out = diffusion.output_to_mean_variance(torch.zeros(1, 6, 2, 2), torch.zeros(1, 3, 2, 2),
                                            torch.tensor([5]), denoised_fn=paste)
    assert torch.all(out.pred_xstart == 1.0)


def test_clip_cond_fn_points_towards_the_text_embedding():
    torch.manual_seed(0)
    projection = torch.randn(3 * 4 * 4, 8)

    def image_encoder(image_0_255, timesteps):
        return (image_0_255 / 255).flatten(1) @ projection

    text = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    cond_fn = clip_guidance(image_encoder, text, grad_scale=0.5)
    x = torch.randn(2, 3, 4, 4)
    grad = cond_fn(x, torch.tensor([100, 100]))
    assert grad.shape == x.shape and not x.requires_grad

    def similarity(images):
        z = image_encoder((images + 1) * 127.5, None)
        return (torch.nn.functional.normalize(z, dim=-1) * text).sum()

    assert similarity(x + 1e-2 * grad) > similarity(x)


def test_a_guided_data_prediction_solver_thresholds_the_shifted_clean_estimate():
    """A score shift moves x0 by (1 - alpha_bar)/sqrt(alpha_bar) times the gradient: at the first steps of the
    cosine schedule hundreds of times. DPM-Solver++ steps straight to x0, so it clamps the shifted x0 again."""
    import torch

    from glide_studio.diffusion import Conditioning, Diffusion
    from glide_studio.diffusion.noise import NoiseSource
    from glide_studio.diffusion.samplers import dpmpp_2m_sample

    diffusion = Diffusion("squaredcos_cap_v2", respacing="4")

    def denoiser(x, t, **_):  # eps 0 and a fixed variance channel: x0 is x scaled, well inside [-1, 1] after clamp
        return torch.cat([torch.zeros_like(x), torch.zeros_like(x)], dim=1)

    def push(x, t, **_):
        return torch.full_like(x, 1.0)

    steps = list(dpmpp_2m_sample(denoiser, diffusion, NoiseSource.from_generator(torch.Generator().manual_seed(0)),
                                 shape=(1, 3, 8, 8), conditioning=Conditioning(cond_fn=push)))
    assert all(float(step.pred_xstart.abs().max()) <= 1.0 for step in steps)
    assert float(steps[-1].sample.abs().max()) <= 1.0
