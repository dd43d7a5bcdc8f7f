"""The checkpoints GLIDE Studio knows: OpenAI's six released GLIDE ("filtered") files and our demo models,
and where each one's file is on this machine (the per-user cache, or the shipped demo weights folder).

The facts (URLs, option dicts, parameter counts) are OpenAI's published values, kept here in code so that
nothing outside the package is read at runtime. ``use_fp16`` is False in every options dict: precision is
decided when a model is built, not by the registry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from .cache import SAFETENSORS_SUFFIX, cache_dir
from .errors import CheckpointError, CheckpointFormatError, MissingWeightsError, UnknownCheckpointError

ModelKind = Literal["unet", "clip-image", "clip-text"]
Source = Literal["official", "demo"]

_OPENAI_BASE_URL = "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/"

DEMO_WEIGHTS_ENV = "GLIDE_STUDIO_DEMO_WEIGHTS"

CacheArg = str | os.PathLike[str] | None


@dataclass(frozen=True)
class CheckpointSpec:
    """One known checkpoint. ``options`` is read-only; call ``options_dict()`` for a mutable copy."""

    name: str
    kind: ModelKind
    source: Source
    description: str
    url: str | None = None
    options: Mapping[str, Any] | None = None
    num_params: int | None = None
    # Pinned digest, when known; otherwise the digest is recorded at first download.
    sha256: str | None = None
    # Extra facts for the CLIP encoders (constructor arguments of the reference classes).
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def filename(self) -> str:
        """File name in the cache (official) or in the weights folder (demo)."""
        return f"{self.name}.pt" if self.source == "official" else f"{self.name}.safetensors"

    @property
    def approx_size(self) -> int | None:
        """Approximate file size in bytes, for the UI and the free-space check (fp32 tensors + headers)."""
        if self.num_params is None:
            return None
        return self.num_params * 4 + 1_000_000

    def options_dict(self) -> dict[str, Any]:
        """A fresh, mutable copy of the options (for demo models, read from the shipped json)."""
        if self.source == "demo":
            return demo_options(self.name)
        assert self.options is not None
        return json.loads(json.dumps(dict(self.options)))


def _unet_options(*, upsampler: bool, inpaint: bool) -> Mapping[str, Any]:
    # model_and_diffusion_defaults() / ..._upsampler() as the GLIDE notebooks build them.
    options: dict[str, Any] = {
        "image_size": 256 if upsampler else 64,
        "num_channels": 192,
        "num_res_blocks": 2 if upsampler else 3,
        "channel_mult": "",
        "num_heads": 1,
        "num_head_channels": 64,
        "num_heads_upsample": -1,
        "attention_resolutions": "32,16,8",
        "dropout": 0.1,
        "text_ctx": 128,
        "xf_width": 512,
        "xf_layers": 16,
        "xf_heads": 8,
        "xf_final_ln": True,
        "xf_padding": True,
        "diffusion_steps": 1000,
        "noise_schedule": "linear" if upsampler else "squaredcos_cap_v2",
        "timestep_respacing": "fast27" if upsampler else "100",
        "use_scale_shift_norm": True,
        "resblock_updown": True,
        "use_fp16": False,
        "cache_text_emb": False,
        "inpaint": inpaint,
        "super_res": upsampler,
    }
    return MappingProxyType(options)


# The packaged config.yaml of the noised CLIP; both encoders are built from the same dict.
_CLIP_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "logit_scale": 100.0,
        "beta_schedule": "squaredcos_cap_v2",
        "n_timesteps": 1000,
        "image_size": 64,
        "patch_size": 4,
        "n_vocab": 65536,
        "max_text_len": 77,
        "n_embd": 512,
        "n_head_state_text": 64,
        "n_head_text": 8,
        "n_xf_blocks_text": 12,
        "n_head_state_image": 64,
        "n_head_image": 12,
        "n_xf_blocks_image": 12,
    }
)


def _official(name: str, kind: ModelKind, description: str, options, num_params: int, **kw) -> CheckpointSpec:
    # OpenAI's file names are the registry names with underscores.
    return CheckpointSpec(
        name=name,
        kind=kind,
        source="official",
        description=description,
        url=_OPENAI_BASE_URL + name.replace("-", "_") + ".pt",
        options=options,
        num_params=num_params,
        **kw,
    )


# The four GLIDE UNets: (name, upsampler, inpaint, description, parameter count).
_OFFICIAL_UNETS: tuple[tuple[str, bool, bool, str, int], ...] = (
    ("base", False, False, "GLIDE base text-to-image, 64 px", 385_030_726),
    ("upsample", True, False, "GLIDE upsampler 64 -> 256 px", 398_361_286),
    ("base-inpaint", False, True, "GLIDE base inpainting, 64 px", 385_037_638),
    ("upsample-inpaint", True, True, "GLIDE inpainting upsampler 64 -> 256 px", 398_368_198),
)


def _noised_clip(name: str, kind: ModelKind, description: str, num_params: int,
                 constructor_args: dict[str, int]) -> CheckpointSpec:
    # The reference code names these "clip/image-enc" and "clip/text-enc".
    extra = {"reference_checkpoint_name": "clip/" + name.removeprefix("clip-"),
             "constructor_args": MappingProxyType(constructor_args)}
    return _official(name, kind, description, _CLIP_CONFIG, num_params, extra=MappingProxyType(extra))


_SPECS: tuple[CheckpointSpec, ...] = (
    *(
        _official(name, "unet", description, _unet_options(upsampler=upsampler, inpaint=inpaint), num_params)
        for name, upsampler, inpaint, description, num_params in _OFFICIAL_UNETS
    ),
    _noised_clip(
        "clip-image-enc", "clip-image", "Noised CLIP image encoder (CLIP guidance)", 86_443_776,
        {"image_size": 64, "patch_size": 4, "n_embd": 512, "n_head": 12, "n_xf_blocks": 12, "n_head_state": 64,
         "n_timestep": 1000},
    ),
    _noised_clip(
        "clip-text-enc", "clip-text", "Noised CLIP text encoder (CLIP guidance)", 71_679_488,
        {"n_bpe_vocab": 65536, "max_text_len": 77, "n_embd": 512, "n_head": 8, "n_xf_blocks": 12,
         "n_head_state": 64},
    ),
    CheckpointSpec(
        name="demo-base-inpaint", kind="unet", source="demo",
        description="Small shapes-world inpainting model, 64 px (shipped)",
    ),
    CheckpointSpec(
        name="demo-upsample-inpaint", kind="unet", source="demo",
        description="Small shapes-world inpainting upsampler (shipped)",
    ),
    CheckpointSpec(
        name="demo-clip-image-enc", kind="clip-image", source="demo",
        description="Small shapes-world noised CLIP image encoder (CLIP guidance, ranking; shipped)",
    ),
    CheckpointSpec(
        name="demo-clip-text-enc", kind="clip-text", source="demo",
        description="Small shapes-world noised CLIP text encoder (CLIP guidance, ranking; shipped)",
    ),
)

REGISTRY: Mapping[str, CheckpointSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
OFFICIAL_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.source == "official")
DEMO_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.source == "demo")


def clip_encoders_for(unet_name: str) -> tuple[str, str]:
    """(image, text) noised CLIP encoders that belong with a UNet: the demo pair for the demo models, OpenAI's
    for theirs (a CLIP scores pictures of the world it was trained on)."""
    family = "demo-" if get_spec(unet_name).source == "demo" else ""
    return f"{family}clip-image-enc", f"{family}clip-text-enc"


def get_spec(name: str) -> CheckpointSpec:
    """The registry entry for ``name``; raises UnknownCheckpointError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise UnknownCheckpointError(f"unknown checkpoint {name!r}; known checkpoints: {known}") from None


def _repo_weights_dir() -> Path:
    # glide_studio/checkpoints/registry.py -> repository root is two levels above the package.
    return Path(__file__).resolve().parents[2] / "weights"


def _package_weights_dir() -> Path | None:
    try:
        candidate = resources.files("glide_studio") / "weights"
    except (ModuleNotFoundError, TypeError):
        return None
    # Wheels install as plain directories; a zipped install cannot be memory-mapped, so it is not used.
    if isinstance(candidate, Path) and candidate.is_dir():
        return candidate
    return None


def demo_weights_candidates() -> list[Path]:
    """Where the demo weights are looked for, in order."""
    candidates: list[Path] = []
    override = os.environ.get(DEMO_WEIGHTS_ENV)
    if override:
        candidates.append(Path(override))
    package_dir = _package_weights_dir()
    if package_dir is not None:
        candidates.append(package_dir)
    candidates.append(_repo_weights_dir())
    return candidates


def demo_weights_dir() -> Path:
    """The folder holding the shipped demo weights.

    Order: ``$GLIDE_STUDIO_DEMO_WEIGHTS``, the installed package data ``glide_studio/weights``, then the
    source checkout's top-level ``weights/``. The first folder holding any demo file wins; when none does,
    the last existing candidate is returned so that error messages point somewhere sensible.
    """
    candidates = demo_weights_candidates()
    for folder in candidates:
        if any((folder / f"{name}.safetensors").is_file() for name in DEMO_NAMES):
            return folder
    for folder in candidates:
        if folder.is_dir():
            return folder
    return candidates[-1]


def demo_paths(name: str) -> tuple[Path, Path]:
    """(weights, json) paths of a demo model; raises MissingWeightsError if either is absent."""
    spec = get_spec(name)
    if spec.source != "demo":
        raise UnknownCheckpointError(f"{name!r} is not a shipped demo model")
    folder = demo_weights_dir()
    weights = folder / f"{name}.safetensors"
    meta = folder / f"{name}.json"
    missing = [p.name for p in (weights, meta) if not p.is_file()]
    if missing:
        searched = ", ".join(str(p) for p in demo_weights_candidates())
        raise MissingWeightsError(
            f"demo model {name!r} is not available: missing {', '.join(missing)} (searched: {searched}). "
            "The demo weights are produced by the shapes-world training script; until they exist, "
            "download the official GLIDE checkpoints with `glide-studio download`."
        )
    return weights, meta


def demo_options(name: str) -> dict[str, Any]:
    """The official-style options dict stored in a demo model's json."""
    _, meta = demo_paths(name)
    try:
        payload = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"cannot read demo model metadata {meta}: {exc}") from exc
    options = payload.get("options") if isinstance(payload, dict) else None
    if not isinstance(options, dict):
        raise CheckpointFormatError(f"{meta} has no 'options' object")
    return options


def cached_paths(name: str, cache: CacheArg = None) -> tuple[Path, Path]:
    """(.pt, .safetensors) locations of an official checkpoint in the cache (they need not exist)."""
    spec = get_spec(name)
    if spec.source != "official":
        raise CheckpointError(f"{name!r} is a shipped demo model, it is not downloaded into the cache")
    folder = cache_dir(cache)
    pt = folder / spec.filename
    return pt, pt.with_suffix(SAFETENSORS_SUFFIX)


def local_path(name: str, cache: CacheArg = None) -> Path | None:
    """The file of ``name`` on disk (a converted .safetensors is preferred over the .pt), or None."""
    spec = get_spec(name)
    if spec.source == "demo":
        try:
            return demo_paths(name)[0]
        except MissingWeightsError:
            return None
    pt, safetensors = cached_paths(name, cache)
    for path in (safetensors, pt):
        if path.is_file():
            return path
    return None


def is_downloaded(name: str) -> bool:
    """Whether ``name``'s weights are on disk (cache or shipped folder); quick, does not hash the file."""
    return local_path(name) is not None
