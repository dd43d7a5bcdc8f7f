"""fp32 vs bf16 autocast on the full-size GLIDE base-inpaint UNet (random weights): deviation and time.

One forward at batch 2 (a classifier-free pair), 64 px, the text embedding computed once beforehand as the
pipelines do. Run from the repository root:

    PYTHONPATH=. nice -n 19 python benchmarks/bench_precision.py [--preset base-inpaint] [--repeats 2]

The helpers here (random full-size networks and their inputs) are shared with bench_speed.py.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from glide_studio.config import UNET_PRESETS
from glide_studio.models import build_model
from glide_studio.models.precision import choose_precision, cpu_supports_bf16


def random_unet(preset: str, seed: int = 0) -> torch.nn.Module:
    """The official architecture with random weights, built on the meta device and filled once (no default
    init to pay for): weights N(0, 1/fan_in), norm scales 1 + 0.02 N(0, 1), biases and tables 0.02 N(0, 1).
    Nothing is zero, so the reference's zero-initialised output convolutions contribute too, and the
    residual stream stays at a sane scale through the norms."""
    generator = torch.Generator().manual_seed(seed)
    model = build_model(UNET_PRESETS[preset], device="meta").to_empty(device="cpu")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim >= 2:
                parameter.copy_(noise / math.sqrt(parameter[0].numel()))
            elif name.endswith("weight"):
                parameter.copy_(1 + 0.02 * noise)
            else:
                parameter.copy_(0.02 * noise)
    return model.eval()


def random_inputs(model: torch.nn.Module, batch: int, size: int, seed: int = 1) -> tuple[tuple, dict]:
    """(x, timesteps) and the keyword inputs of one denoising call: tokens with half the context used,
    a half-known inpaint mask, and a low-res image for the upsamplers."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    kwargs: dict = {}
    if config.xf_width:
        tokens = torch.randint(0, config.n_vocab, (batch, config.text_ctx), generator=generator)
        mask = torch.zeros(batch, config.text_ctx, dtype=torch.bool)
        mask[:, : config.text_ctx // 2] = True
        kwargs["tokens"], kwargs["mask"] = tokens, mask
    if config.inpaint:
        known = torch.zeros(batch, 1, size, size)
        known[..., : size // 2] = 1
        kwargs["inpaint_image"] = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
        kwargs["inpaint_mask"] = known
    if config.super_res:
        kwargs["low_res"] = torch.rand(batch, 3, size // 4, size // 4, generator=generator) * 2 - 1
    return (x, timesteps), kwargs


def with_text_embedding(model: torch.nn.Module, kwargs: dict, autocast) -> dict:
    """Replace tokens/mask by the text embedding, computed once (under the same precision as the steps)."""
    if "tokens" not in kwargs:
        return dict(kwargs)
    rest = {key: value for key, value in kwargs.items() if key not in ("tokens", "mask")}
    with torch.no_grad(), autocast:
        rest["text_emb"] = model.get_text_emb(kwargs["tokens"], kwargs["mask"])
    return rest


def timed_forward(model, args, kwargs, autocast_factory, repeats: int) -> tuple[torch.Tensor, list[float]]:
    """The output (float32) and the wall time of each of `repeats` forwards after one warm-up."""
    times = []
    with torch.no_grad():
        for index in range(repeats + 1):
            start = time.perf_counter()
            with autocast_factory():
                output = model(*args, **kwargs)
            if index:
                times.append(time.perf_counter() - start)
    return output.float(), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base-inpaint", choices=sorted(UNET_PRESETS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_supports_bf16()}")
    start = time.perf_counter()
    model = random_unet(args.preset)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.preset}: {params / 1e6:.1f} M parameters, built in {time.perf_counter() - start:.1f} s; "
          f"batch {args.batch}, {args.size} px")
    inputs, kwargs = random_inputs(model, args.batch, args.size)
    fp32 = choose_precision("cpu", "fp32")
    bf16 = choose_precision("cpu", "bf16")

    exact_kwargs = with_text_embedding(model, kwargs, fp32.autocast())
    exact, fp32_times = timed_forward(model, inputs, exact_kwargs, fp32.autocast, args.repeats)
    low_kwargs = with_text_embedding(model, kwargs, bf16.autocast())
    low, bf16_times = timed_forward(model, inputs, low_kwargs, bf16.autocast, args.repeats)

    deviation = (low - exact).abs()
    eps, eps_low = exact[:, :3], low[:, :3]
    print(f"output std (fp32): eps {eps.std():.4f}, variance channels {exact[:, 3:].std():.4f}")
    print(f"bf16 vs fp32, all channels: max abs {deviation.max():.5f}, mean abs {deviation.mean():.6f}")
    print(f"bf16 vs fp32, eps only:     max abs {(eps_low - eps).abs().max():.5f}, "
          f"mean abs {(eps_low - eps).abs().mean():.6f}, relative RMS "
          f"{((eps_low - eps).pow(2).mean().sqrt() / eps.pow(2).mean().sqrt()):.5f}")
    text_low = low_kwargs.get("text_emb")
    if text_low is not None:
        proj_dev = (text_low["xf_proj"].float() - exact_kwargs["text_emb"]["xf_proj"]).abs().max()
        print(f"text embedding xf_proj max abs deviation: {proj_dev:.5f}")
    for name, times in (("fp32", fp32_times), ("bf16 autocast", bf16_times)):
        print(f"forward {name:14s}: " + ", ".join(f"{t:.2f}" for t in times) + f" s (best {min(times):.2f} s)")
    print(f"speed-up bf16/fp32: {min(fp32_times) / min(bf16_times):.2f}x")


if __name__ == "__main__":
    main()
