"""The Stable Diffusion models we know by name: their Hub repositories, what they are for, their size and
licence. Any other Hub repository id, diffusers folder or .safetensors file works too; these are the ones the
model picker offers and `glide-studio sd-models` lists.

Sizes are of the files fetched (fp32 safetensors of the UNet, VAE and text encoder), rounded; the licences are
the repositories' own, which a user accepts on the Hub's page before the first download."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownModel:
    name: str
    repo_id: str
    description: str
    size_gb: float
    licence: str
    inpainting: bool


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("sd15-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting",
               "Stable Diffusion 1.5 inpainting (9-channel UNet, 512 px): inpaint, sketch to image, generate",
               4.3, "CreativeML OpenRAIL-M (use restrictions; read it on the Hub page)", True),
    KnownModel("sd2-inpainting", "stabilityai/stable-diffusion-2-inpainting",
               "Stable Diffusion 2 inpainting (9-channel UNet, 512 px, OpenCLIP text encoder)",
               5.2, "CreativeML Open RAIL++-M (use restrictions; read it on the Hub page)", True),
    KnownModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5",
               "Stable Diffusion 1.5 text to image (4-channel UNet: inpaints by keeping the known latents)",
               4.3, "CreativeML OpenRAIL-M (use restrictions; read it on the Hub page)", False),
)

FILE_PATTERNS = (
    "model_index.json", "scheduler/scheduler_config.json", "tokenizer/*.json", "tokenizer/*.txt",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json", "text_encoder/model.safetensors",
)
"""What a run needs of a diffusers repository: configs, the tokenizer and the fp32 safetensors weights (never the
pickled .bin copies, the safety checker, or the fp16/EMA duplicates)."""


def known(name: str) -> KnownModel | None:
    return next((model for model in KNOWN_MODELS if model.name == name), None)


MODELS_PATH_VARIABLE = "GLIDE_STUDIO_SD_MODELS"
"""Where the model picker looks for the user's own Stable Diffusion models: folders (os.pathsep-separated), each a
diffusers folder itself or holding diffusers folders and .safetensors files."""


def user_models() -> list[tuple[str, str]]:
    """(model name, label) of every diffusers folder and .safetensors file found under MODELS_PATH_VARIABLE."""
    import os
    from pathlib import Path

    found: list[tuple[str, str]] = []
    for entry in filter(None, os.environ.get(MODELS_PATH_VARIABLE, "").split(os.pathsep)):
        root = Path(entry).expanduser()
        candidates = [root] if (root / "model_index.json").is_file() or root.suffix == ".safetensors" else \
            sorted(root.iterdir()) if root.is_dir() else []
        for path in candidates:
            if (path / "model_index.json").is_file() or (path.is_file() and path.suffix == ".safetensors"):
                found.append((f"sd:{path}", path.stem if path.is_file() else path.name))
    return found
