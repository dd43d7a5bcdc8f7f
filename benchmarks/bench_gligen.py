"""What GLIGEN grounding costs per UNet step on this CPU: a GLIGEN 1.4-sized UNet (SD 1.4's architecture with
gated self-attention in every transformer block and its position net) stepped with and without boxes.

Random weights (seed 0, the gates opened to 1 as a trained model's are) of the real architecture, so nothing is
downloaded: a step's cost does not depend on the values. One step is one call with batch 2 (the pair classifier-free
guidance runs), a 77-token context and, when grounded, the position net's 30 slots with 3 boxes filled, as
glide_studio.sd.gligen passes them. The two kinds of step alternate round by round (best and median of --repeats
rounds after one warm-up round each), so that a machine whose load changes weighs on both alike; the figure that
matters is their ratio, measured side by side in this one run. A step without boxes is what the run's steps past
grounding_share cost (the gated layers are skipped), and also what plain SD 1.4 costs, plus nothing.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_gligen.py [--repeats 3] [--threads 2] [--size 256]
        [--precision bf16|fp32] [--tiny]   (--tiny: a small UNet, to check the script in seconds)
"""

from __future__ import annotations

import argparse
import statistics
import time

GLIGEN_14_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, attention_type="gated",
)
"""masterful/gligen-1-4-generation-text-box's unet config (its non-default keys)."""
TINY_UNET = dict(GLIGEN_14_UNET, block_out_channels=(32, 64, 64, 64), cross_attention_dim=32, attention_head_dim=4,
                 norm_num_groups=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="picture side in pixels (the latent is 1/8 of it)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()

    import torch
    from diffusers import UNet2DConditionModel

    from glide_studio.pipelines.request import MAX_REGIONS
    from glide_studio.sd.gligen import Grounding

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TINY_UNET if args.tiny else GLIGEN_14_UNET
    unet = UNet2DConditionModel(**config).eval()
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")):
                parameter.fill_(1.0)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    unet = unet.to(dtype)
    total = sum(parameter.numel() for parameter in unet.parameters())
    grounding_parameters = sum(parameter.numel() for name, parameter in unet.named_parameters()
                               if ".fuser." in name or name.startswith("position_net."))

    width = config["cross_attention_dim"]
    side = args.size // 8
    latents = torch.randn(2, 4, side, side, dtype=dtype)
    context = torch.randn(2, 77, width, dtype=dtype)
    boxes = torch.zeros(2, MAX_REGIONS, 4, dtype=dtype)
    boxes[:, :3] = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6], [0.2, 0.6, 0.8, 0.95]], dtype=dtype)
    embeddings = torch.zeros(2, MAX_REGIONS, width, dtype=dtype)
    embeddings[:, :3] = torch.randn(3, width, dtype=dtype)
    masks = torch.zeros(2, MAX_REGIONS, dtype=dtype)
    masks[1, :3] = 1  # the unconditional row sees no boxes, as in a guided run
    grounding = Grounding(boxes, embeddings, masks, grounded_steps=1)
    timestep = torch.tensor(500)

    def step(grounded: bool) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            unet(latents, timestep, encoder_hidden_states=context,
                 cross_attention_kwargs=grounding.attention_kwargs(0 if grounded else 1), return_dict=False)
        return time.perf_counter() - started

    step(False), step(True)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _round in range(args.repeats):
        for grounded in (False, True):
            times[grounded].append(step(grounded))
    plain, grounded = (statistics.median(times[kind]) for kind in (False, True))
    print(f"GLIGEN UNet ({'tiny' if args.tiny else '1.4 size'}): {total / 1e6:.0f}M parameters, of which "
          f"{grounding_parameters / 1e6:.0f}M ({grounding_parameters / total:.0%}) are the gated layers and the "
          f"position net")
    print(f"{args.precision}, {args.size} px ({side}x{side} latent), batch 2, {args.threads} threads, "
          f"{args.repeats} rounds")
    for label, kind in (("step without boxes", False), ("step with 3 boxes", True)):
        print(f"  {label}: median {statistics.median(times[kind]):.2f} s, best {min(times[kind]):.2f} s "
              f"({', '.join(f'{value:.2f}' for value in times[kind])})")
    print(f"  a grounded step costs {grounded / plain:.2f}x a step without boxes (medians; best: "
          f"{min(times[True]) / min(times[False]):.2f}x)")


if __name__ == "__main__":
    main()
