"""Schedules and respacings against OpenAI's float64 tables (sampling.pt section a)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glide_studio.diffusion import Diffusion, DiffusionError, betas_for_schedule, space_timesteps
from glide_studio.diffusion.schedules import log_snr_timesteps, partial_timesteps, strength_timestep

RESPACINGS = ["100", "50", "27", "fast27", "25", "10", "10,10,3,2,2", "ddim25", "21", "13"]
FIELDS = [
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
]


@pytest.fixture(scope="module")
def sampling(reference_dir):
    return torch.load(reference_dir / "sampling.pt", weights_only=True)


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
def test_base_schedules_match_reference(sampling, schedule):
    betas = betas_for_schedule(schedule, 1000)
    np.testing.assert_allclose(betas, sampling[f"a.{schedule}.betas"].numpy(), rtol=1e-12, atol=1e-12)
    full = Diffusion(schedule)
    np.testing.assert_allclose(full.alphas_cumprod, sampling[f"a.{schedule}.alphas_cumprod"].numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", RESPACINGS)
def test_space_timesteps_exact(sampling, spec):
    expected = sampling[f"a.respacing.{spec}.use_timesteps"].tolist()
    assert space_timesteps(1000, spec) == expected
    assert Diffusion("linear", spec).timestep_map.tolist() == expected


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
@pytest.mark.parametrize("spec", RESPACINGS)
def test_respaced_tables_match_reference(sampling, schedule, spec):
    diffusion = Diffusion(schedule, spec)
    for field in FIELDS:
        expected = sampling[f"a.{schedule}.{spec}.{field}"].numpy()
        np.testing.assert_allclose(getattr(diffusion, field), expected, rtol=1e-12, atol=1e-12,
                                   err_msg=field)


def test_rounding_is_half_to_even_and_stride_accumulates():
    # 166 (not 167) in "25" comes from round(166.5) == 166.
    assert 166 in space_timesteps(1000, "25")
    assert space_timesteps(1000, "fast27")[-1] == 997


def test_coefficients_are_float64_tables_rounded_to_float32():
    diffusion = Diffusion("squaredcos_cap_v2", "100")
    t = torch.tensor([99, 0])
    coef = diffusion.coef("sqrt_recipm1_alphas_cumprod", t, torch.zeros(2, 3, 4, 4))
    assert coef.dtype == torch.float32 and coef.shape == (2, 1, 1, 1)
    assert coef[0].item() == np.float32(diffusion.sqrt_recipm1_alphas_cumprod[99])


@pytest.mark.parametrize("spec", ["abc", "ddim7x", "0", "5,2000", "ddim999999"])
def test_bad_respacing_is_a_clear_error(spec):
    with pytest.raises(DiffusionError):
        space_timesteps(1000, spec)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(DiffusionError, match="unknown noise schedule"):
        Diffusion("cosine-ish")


@pytest.mark.parametrize("log_snr_grid", [True, False])
@pytest.mark.parametrize("strength,count,expected_count", [(1.0, 25, 25), (0.7, 25, 25), (0.3, 7, 7),
                                                           (0.004, 25, 5), (0.001, 25, 2), (0.0005, 3, 1)])
def test_partial_chain_runs_the_asked_steps_from_the_strengths_noise_level(strength, count, expected_count,
                                                                             log_snr_grid):
    kept = partial_timesteps("squaredcos_cap_v2", count, strength, log_snr_grid=log_snr_grid)
    assert len(kept) == expected_count and kept[-1] == round(strength * 999) == strength_timestep(strength)
    assert kept == sorted(set(kept)) and kept[0] == 0


def test_partial_log_snr_chain_is_even_in_log_snr_and_the_full_one_unchanged():
    kept = partial_timesteps("squaredcos_cap_v2", 25, 0.7, log_snr_grid=True)
    acp = np.cumprod(1 - betas_for_schedule("squaredcos_cap_v2", 1000))
    lambda_steps = -np.diff(0.5 * np.log(acp[kept] / (1 - acp[kept])))
    # even in lambda, away from t = 0 where whole timesteps are too coarse to follow the grid
    assert np.allclose(lambda_steps[5:], np.median(lambda_steps), rtol=0.15) and (lambda_steps > 0).all()
    full = log_snr_timesteps("squaredcos_cap_v2", 25)
    assert partial_timesteps("squaredcos_cap_v2", 25, 1.0, log_snr_grid=True) == full


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.01])
def test_strength_outside_its_range_is_a_clear_error(strength):
    with pytest.raises(DiffusionError, match="strength"):
        strength_timestep(strength)
