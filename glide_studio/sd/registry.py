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
    variations: bool = False
    """An unCLIP model: conditioned on a picture's CLIP image embedding ("Variations of this box")."""
    gligen: bool = False
    """A GLIGEN model: its UNet has gated self-attention and follows boxes with phrases (the Regions tool)."""


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("sd15-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting",
               "Stable Diffusion 1.5 inpainting (9-channel UNet, 512 px): inpaint, sketch to image, generate",
               4.3, "CreativeML OpenRAIL-M (use restrictions; read it on the Hub page)", True),
    KnownModel("sd2-inpainting", "stabilityai/stable-diffusion-2-inpainting",
               "Stable Diffusion 2 inpainting (9-channel UNet, 512 px, OpenCLIP text encoder)",
               5.2, "CreativeML Open RAIL++-M (use restrictions; read it on the Hub page)", True),
    KnownModel("sdxl-inpainting", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
               "SDXL 1.0 inpainting 0.1 (9-channel UNet, 1024 px, two text encoders): inpaint, sketch to image, "
               "generate; slow on a CPU", 13.9, "CreativeML Open RAIL++-M (use restrictions; read it on the Hub page)",
               True),
    KnownModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5",
               "Stable Diffusion 1.5 text to image (4-channel UNet: inpaints by keeping the known latents)",
               4.3, "CreativeML OpenRAIL-M (use restrictions; read it on the Hub page)", False),
    KnownModel("sd21-unclip-small", "stabilityai/stable-diffusion-2-1-unclip-small",
               "Stable unCLIP 2.1 small (768 px, CLIP ViT-L/14 image embeddings): variations of the edit box",
               6.4, "CreativeML Open RAIL++-M (use restrictions; read it on the Hub page)", False, variations=True),
    # GLIGEN (SD 1.4 with gated self-attention and a position net); the size is SD 1.4's fp32 files plus the
    # grounding layers, estimated from their shapes, not read from the Hub.
    KnownModel("gligen-generation", "masterful/gligen-1-4-generation-text-box",
               "GLIGEN 1.4 text-box generation (512 px): boxes with phrases ground generate, sketch to image and "
               "inpaint (by keeping the known latents)",
               5.1, "CreativeML OpenRAIL-M, as SD 1.4 (use restrictions; read it on the Hub page)", False,
               gligen=True),
    KnownModel("gligen-inpainting", "masterful/gligen-1-4-inpainting-text-box",
               "GLIGEN 1.4 text-box inpainting (9-channel UNet, 512 px): draws each phrase in its box inside the mask",
               5.1, "CreativeML OpenRAIL-M, as SD 1.4 (use restrictions; read it on the Hub page)", True,
               gligen=True),
)

FILE_PATTERNS = (
    "model_index.json", "scheduler/scheduler_config.json", "tokenizer/*.json", "tokenizer/*.txt",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json", "text_encoder/model.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.safetensors", "tokenizer_2/*.json", "tokenizer_2/*.txt",
    "image_encoder/config.json", "image_encoder/model.safetensors", "image_normalizer/config.json",
    "image_normalizer/diffusion_pytorch_model.safetensors", "image_noising_scheduler/scheduler_config.json",
)
"""What a run needs of a diffusers repository: configs, the tokenizer and the fp32 safetensors weights (never the
pickled .bin copies, the safety checker, or the fp16/EMA duplicates). SDXL's second text encoder and tokenizer
match too, and so do an unCLIP repository's image encoder, image normalizer and noising schedule; other
repositories have none, so those patterns fetch nothing there."""


@dataclass(frozen=True)
class KnownIPAdapter:
    """An IP-Adapter on the Hub: its weights file and its CLIP image encoder's folder within the repository."""

    name: str
    repo_id: str
    weights: str
    image_encoder: str
    description: str
    size_gb: float
    licence: str

    @property
    def files(self) -> tuple[str, ...]:
        return (self.weights, f"{self.image_encoder}/config.json", f"{self.image_encoder}/model.safetensors")


KNOWN_IP_ADAPTERS: tuple[KnownIPAdapter, ...] = (
    KnownIPAdapter("ip-adapter-sd15", "h94/IP-Adapter", "models/ip-adapter_sd15.safetensors", "models/image_encoder",
                   "IP-Adapter for Stable Diffusion 1.5 (4 image tokens) with its OpenCLIP ViT-H/14 image encoder",
                   2.6, "Apache 2.0 (the adapter); the image encoder is LAION's OpenCLIP ViT-H/14 (MIT)"),
)


def known_ip_adapter(name: str) -> KnownIPAdapter | None:
    return next((adapter for adapter in KNOWN_IP_ADAPTERS if adapter.name == name), None)


def user_ip_adapters() -> list[tuple[str, str]]:
    """(adapter path, label) of every IP-Adapter under MODELS_PATH_VARIABLE: a .safetensors file with its
    image_encoder/ folder beside it, in a subfolder of a models folder (h94's `models/` layout)."""
    import os
    from pathlib import Path

    found: list[tuple[str, str]] = []
    for entry in filter(None, os.environ.get(MODELS_PATH_VARIABLE, "").split(os.pathsep)):
        root = Path(entry).expanduser()
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if (folder / "image_encoder" / "config.json").is_file():
                found += [(str(path), path.stem) for path in sorted(folder.glob("*.safetensors"))]
    return found


def makes_variations(model: str) -> bool:
    """Whether an "sd:" model is an unCLIP model, from its registry entry or its folder's model_index.json (read,
    not loaded: the window asks when the model picker changes)."""
    import json
    from pathlib import Path

    spec = model[3:] if model.startswith("sd:") else model
    entry = known(spec)
    if entry is not None:
        return entry.variations
    try:
        index = json.loads((Path(spec).expanduser() / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and "image_normalizer" in index


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


def grounds_regions(model: str | None) -> bool:
    """Whether a model name is a GLIGEN model, so that boxes with phrases mean something to it: a known GLIGEN
    model, or a diffusers folder whose UNet has gated self-attention (read from its config, nothing imported). A
    single file is not looked into (GLIGEN is published as diffusers folders)."""
    import json
    from pathlib import Path

    if not isinstance(model, str) or not model.startswith("sd:"):
        return False
    spec = model[len("sd:"):]
    found = known(spec)
    if found is not None:
        return found.gligen
    config = Path(spec).expanduser() / "unet" / "config.json"
    try:
        return json.loads(config.read_text()).get("attention_type") == "gated"
    except (OSError, ValueError, AttributeError):
        return False
