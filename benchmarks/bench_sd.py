"""One Stable Diffusion 1.5 inpainting UNet step on this CPU, fp32 against bf16, with memory.

The UNet has the real SD 1.5 inpainting architecture (9 input channels, 320-640-1280-1280 channels, 768-wide
CLIP text context: ~860M parameters) with random weights (seed 0), so no download is needed: the cost of a step
does not depend on the values. One step is one call at 512 px (a 64x64 latent) with batch 2, the pair that
classifier-free guidance runs, and a 77-token context. Each precision runs in a child process of its own, one
after the other, so that their memory figures do not mix:

- load: resident memory once the UNet is built (fp32: built in fp32; bf16: built in fp32, then its weights
  converted, as glide_studio.sd.loading does);
- peak: the most resident memory seen while the timed steps ran (polled every 20 ms), i.e. weights plus the
  step's activations;
- step: the median wall time of --repeats steps after one warm-up step.

bf16 is compared with fp32 on the same weights and inputs: the relative L2 error of its prediction. Speeds are
given as a ratio of two figures measured side by side in this one run. Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sd.py [--repeats 3] [--threads 2] [--size 512] [--batch 2]
        [--tiny]   (a small UNet, to check the script in seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SD15_INPAINTING_UNET = dict(
    sample_size=64, in_channels=9, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
"""diffusers' config of stable-diffusion-v1-5/stable-diffusion-inpainting's unet (its non-default keys)."""
TINY_UNET = dict(SD15_INPAINTING_UNET, block_out_channels=(32, 64, 64, 64), cross_attention_dim=32,
                 attention_head_dim=4, norm_num_groups=8)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(precision: str, args: argparse.Namespace, output: Path) -> dict:
    import torch
    from diffusers import UNet2DConditionModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    unet = UNet2DConditionModel(**(TINY_UNET if args.tiny else SD15_INPAINTING_UNET)).eval()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    unet = unet.to(dtype)
    built = time.perf_counter() - started
    load_rss = _rss_bytes()
    generator = torch.Generator().manual_seed(1)
    side = args.size // 8
    latents = torch.randn((args.batch, 9, side, side), generator=generator)
    context = torch.randn((args.batch, 77, unet.config.cross_attention_dim), generator=generator)
    timestep = torch.tensor(500)

    def step() -> torch.Tensor:
        with torch.no_grad():
            return unet(latents.to(dtype), timestep, encoder_hidden_states=context.to(dtype), return_dict=False)[0]

    step()  # warm-up: the first call builds kernels and buffers
    peak, running = [_rss_bytes()], [True]

    def poll() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    times = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        prediction = step()
        times.append(time.perf_counter() - begin)
    running[0] = False
    poller.join()
    torch.save(prediction.float(), output)
    return {"precision": precision, "parameters": sum(p.numel() for p in unet.parameters()), "build_s": built,
            "load_rss": load_rss, "peak_rss": peak[0], "step_s": statistics.median(times), "steps": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--worker", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args, args.output)))
        return

    import torch

    from glide_studio.models.precision import cpu_supports_bf16

    print(f"SD 1.5 inpainting UNet{' (tiny)' if args.tiny else ''}, {args.size} px, batch {args.batch}, "
          f"{args.threads} threads, torch {torch.__version__}, native bf16: {cpu_supports_bf16()}")
    results, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("fp32", "bf16"):
            outputs[precision] = Path(folder) / f"{precision}.pt"
            command = [sys.executable, __file__, "--worker", precision, "--output", str(outputs[precision]),
                       "--repeats", str(args.repeats), "--threads", str(args.threads), "--size", str(args.size),
                       "--batch", str(args.batch)] + (["--tiny"] if args.tiny else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[precision] = json.loads(done.stdout.strip().splitlines()[-1])
            found = results[precision]
            print(f"{precision}: {found['parameters'] / 1e6:.0f}M parameters, step {found['step_s']:.2f} s "
                  f"(each: {', '.join(f'{t:.2f}' for t in found['steps'])}), resident after load "
                  f"{found['load_rss'] / 2**30:.2f} GiB, peak while stepping {found['peak_rss'] / 2**30:.2f} GiB")
        reference, low = (torch.load(outputs[name], weights_only=True) for name in ("fp32", "bf16"))
    error = float((low - reference).norm() / reference.norm())
    ratio = results["fp32"]["step_s"] / results["bf16"]["step_s"]
    print(f"bf16 step is {ratio:.2f}x as fast as fp32; its prediction's relative L2 error against fp32: {error:.4f}; "
          f"peak memory bf16/fp32: {results['bf16']['peak_rss'] / results['fp32']['peak_rss']:.2f}")


if __name__ == "__main__":
    main()
