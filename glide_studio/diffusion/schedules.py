"""Noise schedules and timestep respacing, in float64 numpy, matching OpenAI's GLIDE tables exactly."""

from __future__ import annotations

import math

import numpy as np

from glide_studio.diffusion.errors import DiffusionError

SCHEDULE_NAMES = ("squaredcos_cap_v2", "linear")


def _cosine_alpha_bar(s: float) -> float:
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


def betas_for_schedule(name: str, num_steps: int = 1000) -> np.ndarray:
    """The per-step betas of a named schedule, float64, shape (num_steps,)."""
    if num_steps < 1:
        raise DiffusionError(f"a schedule needs at least one step, got {num_steps}")
    if name == "linear":
        # The linear endpoints are defined for 1000 steps and stretched for other lengths.
        scale = 1000 / num_steps
        return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)
    if name == "squaredcos_cap_v2":
        betas = []
        for i in range(num_steps):
            ratio = _cosine_alpha_bar((i + 1) / num_steps) / _cosine_alpha_bar(i / num_steps)
            betas.append(min(1 - ratio, 0.999))
        return np.array(betas, dtype=np.float64)
    raise DiffusionError(f"unknown noise schedule {name!r}; expected one of {', '.join(SCHEDULE_NAMES)}")


def _evenly_spaced_sections(num_steps: int, counts: list[int]) -> set[int]:
    base_size, extra = divmod(num_steps, len(counts))
    start = 0
    kept: set[int] = set()
    for section, count in enumerate(counts):
        size = base_size + (1 if section < extra else 0)
        if count < 0 or size < count:
            raise DiffusionError(f"cannot take {count} steps from a section of {size} timesteps")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        # Accumulating the float stride (rather than round(k * stride)) and Python's round-half-to-even
        # are both what the reference does; some respacings (e.g. "21", "25") depend on them.
        position = 0.0
        for _ in range(count):
            kept.add(start + round(position))
            position += stride
        start += size
    return kept


def space_timesteps(num_steps: int, spec: str | int | list[int]) -> list[int]:
    """The sorted original timesteps kept by a respacing spec.

    spec: a count ("100"), comma-separated counts per equal section ("10,10,3,2,2"), "ddimN" (a whole-number
    stride giving exactly N steps) or "fast27" (the upsampler's hand-tuned 27 steps).
    """
    if isinstance(spec, int):
        counts = [spec]
    elif isinstance(spec, (list, tuple)):
        counts = [int(c) for c in spec]
    elif isinstance(spec, str):
        text = spec.strip()
        if text.startswith("ddim"):
            try:
                wanted = int(text[4:])
            except ValueError as exc:
                raise DiffusionError(f"bad respacing {spec!r}: expected 'ddim' and a number") from exc
            for stride in range(1, num_steps):
                if len(range(0, num_steps, stride)) == wanted:
                    return list(range(0, num_steps, stride))
            raise DiffusionError(f"no whole-number stride gives exactly {wanted} of {num_steps} steps")
        if text == "fast27":
            kept = set(space_timesteps(num_steps, "10,10,3,2,2"))
            kept.remove(num_steps - 1)
            kept.add(num_steps - 3)
            return sorted(kept)
        try:
            counts = [int(part) for part in text.split(",")]
        except ValueError as exc:
            raise DiffusionError(
                f"bad respacing {spec!r}: expected a count, comma-separated counts, 'ddimN' or 'fast27'"
            ) from exc
    else:
        raise DiffusionError(f"bad respacing {spec!r}")
    if not counts or all(c == 0 for c in counts):
        raise DiffusionError(f"respacing {spec!r} keeps no timesteps")
    return sorted(_evenly_spaced_sections(num_steps, counts))


def respaced_betas(alphas_cumprod: np.ndarray, kept: list[int]) -> np.ndarray:
    """Betas of the shorter chain that visits only the kept timesteps, with the same alphas_cumprod there."""
    betas = []
    previous = 1.0
    for i in kept:
        betas.append(1 - alphas_cumprod[i] / previous)
        previous = alphas_cumprod[i]
    return np.array(betas, dtype=np.float64)


def log_snr_timesteps(schedule: str, count: int, num_base_steps: int = 1000,
                      log_snr_floor: float = -3.5, last_timestep: int | None = None) -> list[int]:
    """`count` original timesteps evenly spaced in half-log-SNR lambda = log(alpha / sigma), for
    high-order solvers (DPM-Solver++), whose error depends on the step size in lambda.

    The reference's evenly-in-t spacing leaves one huge lambda step next to the data (t=42 -> 0 for
    "25"), where a multistep solver extrapolates badly. The chain always starts at the last timestep
    (pure noise); the cosine schedule's capped last beta puts that at lambda ~ -9.9, so the even grid
    stops at `log_snr_floor` and the first step jumps from pure noise onto it. A chain that starts
    part-way (SDEdit) ends at `last_timestep` instead.
    """
    last = num_base_steps - 1 if last_timestep is None else last_timestep
    if not 0 <= last < num_base_steps:
        raise DiffusionError(f"last timestep must be in 0..{num_base_steps - 1}, got {last}")
    if not 1 <= count <= last + 1:
        raise DiffusionError(f"step count must be in 1..{last + 1}, got {count}")
    if count == 1:
        return [last]
    alphas_cumprod = np.cumprod(1.0 - betas_for_schedule(schedule, num_base_steps))
    log_snr = 0.5 * np.log(alphas_cumprod / (1.0 - alphas_cumprod))
    top = max(log_snr[last], log_snr_floor)
    grid_count = count if top == log_snr[last] else count - 1
    targets = np.linspace(log_snr[0], top, grid_count)
    kept = [int(np.argmin(np.abs(log_snr - target))) for target in targets]
    if grid_count < count:
        kept.append(last)
    kept[-1] = last
    for k in range(1, count):
        kept[k] = max(kept[k], kept[k - 1] + 1)
    for k in range(count - 1, -1, -1):
        kept[k] = min(kept[k], last - (count - 1 - k))
    return kept


def strength_timestep(strength: float, num_base_steps: int = 1000) -> int:
    """The original timestep a run from a given image (SDEdit) starts at. Strength is a noise level (diffusion
    time), not a share of the steps, so it means the same for every sampler; 1 is pure noise."""
    if not 0.0 < strength <= 1.0:
        raise DiffusionError(f"strength must be in (0, 1], got {strength}")
    return int(round(strength * (num_base_steps - 1)))


def partial_timesteps(schedule: str, count: int, strength: float, *, log_snr_grid: bool,
                      num_base_steps: int = 1000) -> list[int]:
    """`count` timesteps from the noise level `strength` down to the data, for a run that starts from a
    given image: the steps the user asks for are the steps that run, as for a run from pure noise.
    Evenly in log-SNR for DPM-Solver++, evenly in t otherwise; fewer when the range holds fewer."""
    top = strength_timestep(strength, num_base_steps)
    count = min(count, top + 1)
    if log_snr_grid:
        return log_snr_timesteps(schedule, count, num_base_steps, last_timestep=top)
    return sorted({int(round(t)) for t in np.linspace(0, top, count)})
