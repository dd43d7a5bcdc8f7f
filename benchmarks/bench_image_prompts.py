"""What an IP-Adapter image prompt costs on this CPU: an SD 1.5 UNet step with the adapter installed (4 image
tokens beside the 77 text tokens in every cross-attention, scale 0.6) against the same step without it, and the
image encoder's one pass per run (OpenCLIP ViT-H/14 at 224 px, as h94/IP-Adapter's SD 1.5 adapter uses).

Every network has its real architecture with random weights (seed 0), so nothing is downloaded: the cost of a step
does not depend on the values. The adapter is installed as glide_studio.sd.ip_adapter installs a user's (diffusers'
loader mixin over a state dict in h94's layout), so the adapted UNet is a copy of the plain one plus the adapter's
weights; the reference is read with glide_studio.sd.image_encoder. The two kinds of step are timed in alternating
rounds (plain, adapted, plain, ...) and the median and best of each kind are kept, so a machine whose load
changes weighs on both alike; the overhead is a ratio of two figures measured side by side in this one run.
Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_image_prompts.py [--rounds 3] [--threads 1] [--size 256]
        [--tiny]   (small networks, to check the script in seconds)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

SD15_UNET = dict(
    sample_size=64, in_channels=9, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
"""stable-diffusion-v1-5/stable-diffusion-inpainting's unet config (its non-default keys)."""
VIT_H_14 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu")
"""h94/IP-Adapter's models/image_encoder config (OpenCLIP ViT-H/14's vision tower with its projection)."""
TINY_UNET = dict(SD15_UNET, block_out_channels=(32, 64, 64, 64), cross_attention_dim=32, attention_head_dim=4,
                 norm_num_groups=8)
TINY_VIT = dict(VIT_H_14, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                projection_dim=16)


def adapter_state(unet, embed: int, tokens: int = 4) -> dict:
    """A random IP-Adapter in h94's layout for this UNet (see tests/sd_image_helpers.py)."""
    import torch

    width = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(tokens * width, embed) * 0.02,
             "image_proj.proj.bias": torch.zeros(tokens * width),
             "image_proj.norm.weight": torch.ones(width), "image_proj.norm.bias": torch.zeros(width)}
    cross = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    for index, name in enumerate(cross):
        hidden = unet.get_submodule(name[: -len(".processor")]).to_q.in_features
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * index + 1}.{part}.weight"] = torch.randn(hidden, width) * 0.02
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=256, help="picture side in pixels (latent = size / 8)")
    parser.add_argument("--batch", type=int, default=2, help="2: the pair classifier-free guidance runs")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from glide_studio.sd.image_encoder import image_embedding

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plain = UNet2DConditionModel(**(TINY_UNET if args.tiny else SD15_UNET)).eval()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_VIT if args.tiny else VIT_H_14))).eval()
    adapted = copy.deepcopy(plain)
    with torch.no_grad():
        state = adapter_state(adapted, encoder.config.projection_dim)
    parts = {"image_proj": {}, "ip_adapter": {}}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        parts[part][rest] = value
    adapted._load_ip_adapter_weights([parts], low_cpu_mem_usage=False)
    for processor in adapted.attn_processors.values():
        if hasattr(processor, "to_k_ip"):
            processor.scale = [0.6]
    extra = sum(value.numel() for value in state.values())

    reference = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    side = args.size // 8
    latents = torch.randn(args.batch, plain.config.in_channels, side, side)
    context = torch.randn(args.batch, 77, plain.config.cross_attention_dim)
    timestep = torch.tensor(500)
    with torch.no_grad():
        began = time.perf_counter()
        embedding = image_embedding(encoder, reference)
        encode_seconds = time.perf_counter() - began
        negatives = args.batch // 2  # the unconditional half's zeros, then the reference's rows
        image_embeds = [torch.cat([torch.zeros_like(embedding)[None]] * negatives
                                  + [embedding[None]] * (args.batch - negatives))]

        def plain_step():
            return plain(latents, timestep, encoder_hidden_states=context).sample

        def adapted_step():
            return adapted(latents, timestep, encoder_hidden_states=context,
                           added_cond_kwargs={"image_embeds": image_embeds}).sample

        plain_step(), adapted_step()  # warm-up
        times = {"plain": [], "adapted": []}
        for _ in range(args.rounds):
            for name, step in (("plain", plain_step), ("adapted", adapted_step)):
                began = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"UNet {'tiny' if args.tiny else 'SD 1.5'}: {sum(p.numel() for p in plain.parameters()) / 1e6:.0f}M "
          f"parameters; the adapter adds {extra / 1e6:.1f}M; image encoder "
          f"{sum(p.numel() for p in encoder.parameters()) / 1e6:.0f}M")
    print(f"{args.size} px ({side}x{side} latent), batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds")
    for name in ("plain", "adapted"):
        print(f"  {name:<8} step: median {medians[name]:.3f} s  ({', '.join(f'{t:.3f}' for t in times[name])})")
    best = {name: min(values) for name, values in times.items()}
    print(f"  adapted / plain: {medians['adapted'] / medians['plain']:.3f} (medians), "
          f"{best['adapted'] / best['plain']:.3f} (best rounds)")
    print(f"  image encoder, once per run: {encode_seconds:.3f} s = {encode_seconds / medians['plain']:.2f} plain "
          "steps")


if __name__ == "__main__":
    main()
