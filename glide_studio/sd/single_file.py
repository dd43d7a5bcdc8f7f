"""A single-file checkpoint (the A1111 / original Stable Diffusion layout: model.diffusion_model.*,
first_stage_model.*, cond_stage_model.*) read from safetensors and converted to diffusers components with
diffusers' own key conversion.

A file has weights but no architecture, so its configs come from, in order:
- a folder beside it with the file's name without `.safetensors` (`my-model/` for `my-model.safetensors`), laid
  out as a diffusers folder without weights (unet/config.json, vae/config.json, text_encoder/config.json,
  tokenizer/, scheduler/scheduler_config.json);
- otherwise the known repository diffusers' detection names for its keys (SD 1.5 inpainting for a 9-channel v1
  UNet, ...), whose configs (a few kB of JSON) are fetched once from the Hub and then read from its cache."""

from __future__ import annotations

import json
from pathlib import Path

from glide_studio.sd import hub
from glide_studio.sd.errors import SDModelError

CONFIG_PATTERNS = ("model_index.json", "*/config.json", "scheduler/scheduler_config.json", "tokenizer/*.json",
                   "tokenizer/*.txt")


def config_folder(path: Path, checkpoint: dict) -> Path:
    beside = path.with_suffix("")
    if (beside / "unet" / "config.json").is_file():
        return beside
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        repo_id = fetch_diffusers_config(checkpoint)["pretrained_model_name_or_path"]
    except (KeyError, TypeError, ValueError) as error:
        raise SDModelError(f"{path.name}: its keys do not match a Stable Diffusion architecture diffusers knows; "
                           f"put its diffusers configs in {beside}/") from error
    return hub.fetch_files(repo_id, CONFIG_PATTERNS)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SDModelError(f"the configs have no {path.parent.name}/{path.name}")
    return dict(json.loads(path.read_text()))


def _filled(module_class, config: dict, state: dict, what: str, path: Path):
    """The module built without allocating random weights, then given the file's (every weight, exact names)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        module = module_class.from_config(config) if hasattr(module_class, "from_config") else module_class(config)
    missing, unexpected = module.load_state_dict(state, strict=False, assign=True)
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise SDModelError(f"{path.name}: its {what} weights do not fit the config ({len(missing)} missing, e.g. "
                           f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    return module


def components_from_file(path: Path, *, progress_class=None) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    try:
        checkpoint = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise SDModelError(f"{path.name} is not a readable safetensors file: {error}") from error
    if any(key.startswith("conditioner.embedders.") for key in checkpoint):
        raise SDModelError(f"{path.name} is an SDXL checkpoint, which is read from its diffusers folder or Hub "
                           "repository (e.g. sd:diffusers/stable-diffusion-xl-1.0-inpainting-0.1), not a single file")
    folder = config_folder(path, checkpoint)
    unet_config = _read_json(folder / "unet" / "config.json")
    vae_config = _read_json(folder / "vae" / "config.json")
    text_config = CLIPTextConfig.from_pretrained(folder / "text_encoder")
    try:
        unet_state = convert_ldm_unet_checkpoint(checkpoint, unet_config)
        vae_state = convert_ldm_vae_checkpoint(checkpoint, vae_config)
        if any(key.startswith("cond_stage_model.model.") for key in checkpoint):  # OpenCLIP (SD 2.x)
            from accelerate import init_empty_weights

            with init_empty_weights():
                shell = CLIPTextModel(text_config)
            text_state = convert_open_clip_checkpoint(shell, checkpoint)
        else:
            text_state = convert_ldm_clip_checkpoint(checkpoint)
    except (KeyError, IndexError, ValueError) as error:
        raise SDModelError(f"{path.name}: its keys could not be converted ({error})") from error
    return {
        "unet": _filled(UNet2DConditionModel, unet_config, unet_state, "UNet", path),
        "vae": _filled(AutoencoderKL, vae_config, vae_state, "VAE", path),
        "text_encoder": _filled(CLIPTextModel, text_config, text_state, "text encoder", path),
        "tokenizer": CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        "scheduler_config": _read_json(folder / "scheduler" / "scheduler_config.json"),
        "weights": path,
    }
