"""Tiny random Stable Diffusion components, built in the test and saved the way users' models come: a diffusers
folder, or one .safetensors file. Small enough that a whole run takes a fraction of a second on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch

SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "clip_sample": False, "timestep_spacing": "leading",
}
SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def _byte_symbols() -> list[str]:
    """CLIP's byte -> printable-character table (the GPT-2 one), written out from its definition."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def write_tokenizer(folder: Path) -> None:
    """A CLIP tokenizer over single bytes (no merges beyond a few): a small local vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": 256 + index for index, symbol in enumerate(symbols)})
    merges = ["#version: 0.2", "r e", "e d</w>", "c i", "ci r"]
    for merge in merges[1:]:
        vocab.setdefault("".join(merge.split()), len(vocab))
    for token in SPECIAL:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 16, "bos_token": SPECIAL[0], "eos_token": SPECIAL[1], "unk_token": SPECIAL[1],
        "pad_token": SPECIAL[1], "tokenizer_class": "CLIPTokenizer"}))


def tiny_components(seed: int = 0, in_channels: int = 9) -> dict:
    """unet (sample_size 8: 32 px pictures), vae (4x down), text_encoder, scheduler config; random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), latent_channels=4,
        norm_num_groups=4, sample_size=32, layers_per_block=1)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=520, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=516, eos_token_id=517, pad_token_id=517, projection_dim=16))
    return {"unet": unet.eval(), "vae": vae.eval(), "text_encoder": text_encoder.eval()}


def save_folder(folder: Path, seed: int = 0, in_channels: int = 9) -> Path:
    """A diffusers folder: model_index.json and one subfolder per component, weights as safetensors."""
    parts = tiny_components(seed, in_channels)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in parts.items():
        module.save_pretrained(folder / name, safe_serialization=True)
    write_tokenizer(folder / "tokenizer")
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    pipeline = "StableDiffusionInpaintPipeline" if in_channels == 9 else "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": pipeline, "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]}))
    return folder
