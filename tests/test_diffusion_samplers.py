"""Sampler accuracy on an analytic denoiser (Gaussian data, exact eps known), noise replay, losses."""

from __future__ import annotations

import pytest
import torch

from glide_studio.diffusion import (
    Conditioning,
    Diffusion,
    DiffusionError,
    NoiseSource,
    ancestral_sample,
    ddim_sample,
    dpmpp_2m_sample,
    dpmpp_2m_sde_sample,
    get_sampler,
    training_losses,
)
from glide_studio.diffusion.schedules import log_snr_timesteps, partial_timesteps

SHAPE = (64, 3, 8, 8)


def gaussian_data(seed=0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.rand(SHAPE[1:], generator=gen) - 0.5
    std = 0.05 + 0.4 * torch.rand(SHAPE[1:], generator=gen)
    return mu, std


def exact_denoiser(mu, std, schedule="squaredcos_cap_v2", variance_value=-1.0):
    """E[eps | x_t] for per-pixel Gaussian data N(mu, std^2), at original-scale timesteps."""
    full = Diffusion(schedule)

    def denoiser(x, timesteps, **_):
        alpha_bar = torch.from_numpy(full.alphas_cumprod)[timesteps].to(x.dtype).view(-1, 1, 1, 1)
        var_t = alpha_bar * std**2 + 1 - alpha_bar
        eps = (1 - alpha_bar).sqrt() * (x - alpha_bar.sqrt() * mu) / var_t
        return torch.cat([eps, torch.full_like(x, variance_value)], dim=1)

    return denoiser


def exact_ode_endpoint(diffusion, x_T, mu, std, start):
    """The probability-flow ODE maps Gaussian marginals affinely: x0 = mu + std (x_T - a mu) / sd_T."""
    alpha_bar = float(diffusion.alphas_cumprod[start])
    return mu + std * (x_T - alpha_bar**0.5 * mu) / (alpha_bar * std**2 + 1 - alpha_bar) ** 0.5


def run(sampler, diffusion, denoiser, x_T, **kwargs):
    steps = list(sampler(denoiser, diffusion, NoiseSource.from_generator(torch.Generator().manual_seed(1)),
                         x_T=x_T, conditioning=Conditioning(clip_denoised=False), **kwargs))
    return steps


def test_dpmpp_2m_in_25_steps_matches_exact_ode_solution_better_than_ddim():
    mu, std = gaussian_data()
    denoiser = exact_denoiser(mu, std)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    grid25 = Diffusion("squaredcos_cap_v2", timesteps=log_snr_timesteps("squaredcos_cap_v2", 25))
    d250 = Diffusion("squaredcos_cap_v2", "250")
    target = exact_ode_endpoint(grid25, x_T, mu, std, 24)
    assert grid25.timestep_map[-1] == d250.timestep_map[-1] == 999  # both start from pure noise

    dpm = run(dpmpp_2m_sample, grid25, denoiser, x_T)
    ddim25 = run(ddim_sample, grid25, denoiser, x_T)
    ddim250 = run(ddim_sample, d250, denoiser, x_T)
    assert len(dpm) == 25 and [s.t for s in dpm] == list(range(24, -1, -1))

    dpm_error = (dpm[-1].sample - target).abs().max().item()
    ddim25_error = (ddim25[-1].sample - target).abs().max().item()
    ddim250_error = (ddim250[-1].sample - target).abs().max().item()
    assert dpm_error < 0.02, dpm_error
    assert dpm_error < ddim25_error / 5, (dpm_error, ddim25_error)
    # 25 second-order steps are about as accurate as 250 first-order ones.
    assert dpm_error < 1.5 * ddim250_error, (dpm_error, ddim250_error)
    assert (ddim250[-1].sample - dpm[-1].sample).abs().max() < 0.03


def test_log_snr_grid_has_the_requested_count_and_starts_at_pure_noise():
    for schedule in ("squaredcos_cap_v2", "linear"):
        for count in (1, 2, 7, 25, 50, 1000):
            kept = log_snr_timesteps(schedule, count)
            assert len(kept) == count and kept == sorted(set(kept)) and kept[-1] == 999
    with pytest.raises(DiffusionError):
        log_snr_timesteps("linear", 0)


def test_ancestral_sampling_brackets_the_data_distribution():
    """With exact eps, the posterior variance (v=-1) under-disperses and beta (v=+1) over-disperses:
    the true per-pixel std lies between the two runs, and both means are right."""
    mu, std = gaussian_data()
    diffusion = Diffusion("squaredcos_cap_v2", "50")
    relative_std_error = {}
    for variance_value in (-1.0, 1.0):
        gen = torch.Generator().manual_seed(0)
        *_, last = ancestral_sample(exact_denoiser(mu, std, variance_value=variance_value), diffusion,
                                    NoiseSource.from_generator(gen), shape=(256, *SHAPE[1:]),
                                    conditioning=Conditioning(clip_denoised=False))
        assert (last.sample.mean(0) - mu).abs().mean() < 0.015
        relative_std_error[variance_value] = ((last.sample.std(0) - std) / std).mean().item()
    assert -0.2 < relative_std_error[-1.0] < -0.01 < 0.01 < relative_std_error[1.0] < 0.15, relative_std_error


def test_partial_start_runs_only_the_tail_of_the_chain():
    mu, std = gaussian_data()
    denoiser = exact_denoiser(mu, std)
    diffusion = Diffusion("squaredcos_cap_v2",
                          timesteps=partial_timesteps("squaredcos_cap_v2", 12, 0.4, log_snr_grid=True))
    x0 = mu + std * torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    start = diffusion.num_steps - 1
    assert start == 11 and int(diffusion.timestep_map[start]) == 400
    x_t = diffusion.q_sample(x0, torch.full((SHAPE[0],), start), torch.randn(SHAPE))
    steps = run(dpmpp_2m_sample, diffusion, denoiser, x_t, t_start=start)
    assert [s.t for s in steps] == list(range(start, -1, -1))
    target = exact_ode_endpoint(diffusion, x_t, mu, std, start)
    assert (steps[-1].sample - target).abs().max() < 0.02


def test_dpmpp_2m_sde_in_25_steps_samples_the_data_distribution():
    """With exact eps the SDE solver's samples have the data's per-pixel mean and spread, though each run
    starts from its own noise and ends elsewhere than the ODE's endpoint."""
    mu, std = gaussian_data()
    grid25 = Diffusion("squaredcos_cap_v2", timesteps=log_snr_timesteps("squaredcos_cap_v2", 25))
    x_T = torch.randn((512, *SHAPE[1:]), generator=torch.Generator().manual_seed(4))
    denoiser = exact_denoiser(mu, std)
    steps = run(dpmpp_2m_sde_sample, grid25, denoiser, x_T)
    assert [s.t for s in steps] == list(range(24, -1, -1))
    sample = steps[-1].sample
    assert (sample.mean(0) - mu).abs().mean() < 0.01
    relative_std_error = ((sample.std(0) - std) / std).abs().mean().item()
    assert relative_std_error < 0.05, relative_std_error
    ode_endpoint = exact_ode_endpoint(grid25, x_T, mu, std, 24)
    assert (sample - ode_endpoint).abs().mean() > 0.5 * std.mean()  # fresh noise was injected on the way
    with pytest.raises(DiffusionError, match="noise"):
        list(dpmpp_2m_sde_sample(denoiser, grid25, None, x_T=x_T))


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde"])
def test_recorded_noise_replays_a_generator_run(name):
    mu, std = gaussian_data()
    denoiser = exact_denoiser(mu, std, variance_value=0.3)
    diffusion = Diffusion("squaredcos_cap_v2", "10")
    sampler = get_sampler(name)
    recorded = []

    class Recording(NoiseSource):
        def __init__(self):
            self.inner = NoiseSource.from_generator(torch.Generator().manual_seed(9))

        def draw(self, shape, device="cpu", dtype=torch.float32):
            value = self.inner.draw(shape, device, dtype)
            recorded.append(value.clone())
            return value

    kwargs = {"eta": 0.7} if name == "ddim" else {}
    first = list(sampler(denoiser, diffusion, Recording(), shape=SHAPE, **kwargs))
    expected_draws = {"ancestral": 11, "ddim": 11, "dpm++2m": 1, "dpm++2m-sde": 10}[name]
    assert len(recorded) == expected_draws
    replay = list(sampler(denoiser, diffusion, NoiseSource.from_recorded(recorded), shape=SHAPE, **kwargs))
    assert torch.equal(first[-1].sample, replay[-1].sample)


def test_recorded_noise_errors_are_clear():
    source = NoiseSource.from_recorded([torch.zeros(2, 3)])
    with pytest.raises(DiffusionError, match="shape"):
        source.draw((3, 3))
    source.draw((2, 3))
    with pytest.raises(DiffusionError, match="exhausted"):
        source.draw((2, 3))


def test_unknown_sampler_is_a_clear_error():
    with pytest.raises(DiffusionError, match="unknown sampler"):
        get_sampler("euler-ish")


def test_training_losses_mse_trains_eps_and_vb_trains_only_variance():
    mu, std = gaussian_data()
    exact = exact_denoiser(mu, std)
    diffusion = Diffusion("squaredcos_cap_v2")
    x0 = (mu + std * torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))).clamp(-1, 1)
    t = torch.linspace(0, 999, SHAPE[0]).long()
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))

    eps_bias = torch.zeros(SHAPE[1:], requires_grad=True)
    var_values = torch.zeros(SHAPE[1:], requires_grad=True)

    def learnable(x, timesteps):
        out = exact(x, timesteps)
        return torch.cat([out[:, :3] + eps_bias, var_values.expand_as(x)], dim=1)

    losses = training_losses(learnable, diffusion, x0, t, noise)
    assert set(losses) == {"mse", "vb", "loss"} and losses["loss"].shape == (SHAPE[0],)
    assert torch.isfinite(losses["loss"]).all() and (losses["vb"] >= -1e-4).all()
    eps_grad, var_grad = torch.autograd.grad(losses["vb"].sum(), [eps_bias, var_values], allow_unused=True,
                                             retain_graph=True)
    assert eps_grad is None or eps_grad.abs().max() == 0
    assert var_grad.abs().max() > 0
    eps_grad_mse = torch.autograd.grad(losses["mse"].sum(), eps_bias)[0]
    assert eps_grad_mse.abs().max() > 0


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde"])
def test_a_one_step_chain_returns_the_denoised_prediction(name):
    """One step (the app's minimum) returns the model's x0. The log-SNR grid's one step is t=999, so that x0
    is the data's mean; the reference's respacing "1" keeps t=0 instead (x0 is then x_T, nearly unchanged)."""
    mu, std = gaussian_data()
    grid = (Diffusion("squaredcos_cap_v2", timesteps=log_snr_timesteps("squaredcos_cap_v2", 1))
            if name.startswith("dpm") else Diffusion("squaredcos_cap_v2", "1"))
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    steps = run(get_sampler(name), grid, exact_denoiser(mu, std), x_T)
    assert len(steps) == 1 and torch.isfinite(steps[0].sample).all()
    torch.testing.assert_close(steps[0].sample, steps[0].pred_xstart)
    if name.startswith("dpm"):
        assert (steps[0].pred_xstart.mean(0) - mu).abs().mean() < 0.02
    else:
        assert grid.timestep_map.tolist() == [0]
