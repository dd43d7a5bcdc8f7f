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
    pipeline = "StableDiffusionInpaintPipeline" if in_channels == 9 else "StableDiffusionPipeline"
    return write_folder(folder, tiny_components(seed, in_channels), pipeline)


STANDARD_INDEX = {"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                  "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                  "scheduler": ["diffusers", "PNDMScheduler"]}


def write_folder(folder: Path, parts: dict, pipeline: str, *, tokenizers=("tokenizer",),
                 index: dict | None = None) -> Path:
    """`parts` (name -> module) saved as a diffusers folder of the `pipeline` class: each module's subfolder, the
    tokenizers, the scheduler and a model_index.json of the standard components plus `index`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in parts.items():
        module.save_pretrained(folder / name, safe_serialization=True)
    for name in tokenizers:
        write_tokenizer(folder / name)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline, **STANDARD_INDEX, **(index or {})}))
    return folder


# -- the single-file (A1111 / original LDM) layout, written from the diffusers components -----------------------

_RESNET_NAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                 ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_LAYERS = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _resnet(rest: str) -> str:
    for new, old in _RESNET_NAMES:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_key(key: str, per_block: int, attention_up_blocks: set[int]) -> str:
    parts = key.split(".")
    for length in (2, 1):
        head = ".".join(parts[:length])
        if head in _UNET_LAYERS:
            return _UNET_LAYERS[head] + "." + ".".join(parts[length:])
    if parts[0] in ("down_blocks", "up_blocks"):
        block, kind, layer, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if parts[0] == "down_blocks":
            index = 1 + block * (per_block + 1) + layer
            if kind == "downsamplers":
                return f"input_blocks.{1 + block * (per_block + 1) + per_block}.0.op.{rest.removeprefix('conv.')}"
            inner = f"0.{_resnet(rest)}" if kind == "resnets" else f"1.{rest}"
            return f"input_blocks.{index}.{inner}"
        index = block * (per_block + 1) + layer
        if kind == "upsamplers":
            slot = 2 if block in attention_up_blocks else 1
            return f"output_blocks.{block * (per_block + 1) + per_block}.{slot}.{rest}"
        inner = f"0.{_resnet(rest)}" if kind == "resnets" else f"1.{rest}"
        return f"output_blocks.{index}.{inner}"
    if parts[0] == "mid_block":
        kind, layer, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        return f"middle_block.{2 * layer}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
    raise KeyError(key)


_VAE_ATTENTION = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                  ("to_out.0.", "proj_out."))


def _vae_key(key: str, up_blocks: int) -> str:
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    parts = key.split(".")
    if parts[1] == "down_blocks":
        block, kind = int(parts[2]), parts[3]
        if kind == "downsamplers":
            return f"{parts[0]}.down.{block}.downsample.{'.'.join(parts[5:])}"
        return f"{parts[0]}.down.{block}.block.{'.'.join(parts[4:])}"
    if parts[1] == "up_blocks":
        block, kind = up_blocks - 1 - int(parts[2]), parts[3]
        if kind == "upsamplers":
            return f"{parts[0]}.up.{block}.upsample.{'.'.join(parts[5:])}"
        return f"{parts[0]}.up.{block}.block.{'.'.join(parts[4:])}"
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            return f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
        rest = ".".join(parts[4:])
        for new, old in _VAE_ATTENTION:
            if rest.startswith(new):
                rest = old + rest[len(new):]
        return f"{parts[0]}.mid.attn_1.{rest}"
    return key


def single_file_state(folder: Path) -> dict:
    """The folder's weights under the original Stable Diffusion checkpoint's names (one flat state dict)."""
    from safetensors.torch import load_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    attention_up = {index for index, kind in enumerate(unet_config["up_block_types"]) if "CrossAttn" in kind}
    state = {}
    for key, value in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items():
        state["model.diffusion_model." + _unet_key(key, unet_config["layers_per_block"], attention_up)] = value
    for key, value in load_file(folder / "vae" / "diffusion_pytorch_model.safetensors").items():
        ldm = _vae_key(key, len(vae_config["up_block_types"]))
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original stores the attention projections as 1x1 convolutions
        state["first_stage_model." + ldm] = value
    for key, value in load_file(folder / "text_encoder" / "model.safetensors").items():
        state["cond_stage_model.transformer." + key] = value
    return state


def save_single_file(folder: Path, path: Path) -> Path:
    """`folder`'s model as one .safetensors file, with its configs beside it (`path` without the suffix) as a
    diffusers folder without weights."""
    import shutil

    from safetensors.torch import save_file

    save_file({key: value.contiguous() for key, value in single_file_state(folder).items()}, str(path))
    beside = path.with_suffix("")
    for part in ("unet", "vae", "text_encoder"):
        (beside / part).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / part / "config.json", beside / part / "config.json")
    shutil.copytree(folder / "tokenizer", beside / "tokenizer", dirs_exist_ok=True)
    shutil.copytree(folder / "scheduler", beside / "scheduler", dirs_exist_ok=True)
    return path
