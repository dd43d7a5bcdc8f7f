"""Tiny random image-conditioning parts, built in the test and saved as users' files are: a CLIP image encoder
(CLIPVisionModelWithProjection), an IP-Adapter state dict in h94's file format (safetensors) with its encoder in
image_encoder/ beside it, and a Stable unCLIP diffusers folder (a UNet with a projection class embedding, the image
normalizer and the embedding's noising schedule)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sd_helpers import SCHEDULER_CONFIG, save_folder, tiny_components, write_tokenizer

IMAGE_EMBED = 8


def tiny_image_encoder(seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, projection_dim=IMAGE_EMBED)).eval()


def ip_adapter_state(unet, seed: int = 0, tokens: int = 4) -> dict[str, torch.Tensor]:
    """An IP-Adapter's weights as h94's files hold them: the image projection (image_proj.*) and, for the k-th
    cross-attention of the UNet in its processor order, ip_adapter.{2k+1}.to_k_ip / to_v_ip."""
    generator = torch.Generator().manual_seed(seed)
    width = unet.config.cross_attention_dim
    state = {
        "image_proj.proj.weight": torch.randn(tokens * width, IMAGE_EMBED, generator=generator) * 0.5,
        "image_proj.proj.bias": torch.randn(tokens * width, generator=generator) * 0.1,
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    cross = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    for index, name in enumerate(cross):
        hidden = unet.get_submodule(name[: -len(".processor")]).to_q.in_features
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * index + 1}.{part}.weight"] = torch.randn(hidden, width, generator=generator)
    return state


def save_ip_adapter(folder: Path, unet, seed: int = 0) -> Path:
    """folder/ip-adapter_tiny.safetensors with folder/image_encoder/ beside it (h94's `models/` layout)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ip-adapter_tiny.safetensors"
    save_file({key: value.contiguous() for key, value in ip_adapter_state(unet, seed).items()}, str(path))
    tiny_image_encoder(seed).save_pretrained(folder / "image_encoder", safe_serialization=True)
    return path


def save_unclip_folder(folder: Path, seed: int = 0) -> Path:
    """A Stable unCLIP folder: a 4-channel UNet whose class embedding projects [image embedding, noise-level
    embedding] (2 x IMAGE_EMBED wide), the VAE, text encoder, tokenizer and scheduler of the tiny model, and the
    image encoder, normalizer (a random mean and std) and noising schedule."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    parts = tiny_components(seed, in_channels=4)
    torch.manual_seed(seed + 1)
    parts["unet"] = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * IMAGE_EMBED).eval()
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in parts.items():
        module.save_pretrained(folder / name, safe_serialization=True)
    tiny_image_encoder(seed).save_pretrained(folder / "image_encoder", safe_serialization=True)
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=IMAGE_EMBED)
    with torch.no_grad():
        normalizer.mean.copy_(torch.randn(1, IMAGE_EMBED) * 0.1)
        normalizer.std.copy_(torch.rand(1, IMAGE_EMBED) + 0.5)
    normalizer.save_pretrained(folder / "image_normalizer", safe_serialization=True)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000).save_pretrained(
        folder / "image_noising_scheduler")
    write_tokenizer(folder / "tokenizer")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableUnCLIPImg2ImgPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "image_normalizer": ["stable_diffusion", "StableUnCLIPImageNormalizer"],
        "image_noising_scheduler": ["diffusers", "DDPMScheduler"]}))
    return folder


__all__ = ["IMAGE_EMBED", "ip_adapter_state", "save_folder", "save_ip_adapter", "save_unclip_folder",
           "tiny_image_encoder"]
