"""IP-Adapter image prompts: a reference picture's CLIP image embedding steers a Stable Diffusion run's look.

The adapter file (h94's format: `image_proj.*` for the projection of the image embedding to a few extra context
tokens, `ip_adapter.N.to_k_ip/to_v_ip` for each cross-attention's keys and values of those tokens) is read from
safetensors only and installed into the UNet by diffusers' own loader mixin, which turns it into IP-Adapter
attention processors and the UNet's `encoder_hid_proj`. The image encoder is a `CLIPVisionModelWithProjection`.
The embeddings reach the UNet through its added conditioning (`added_cond_kwargs["image_embeds"]`), zeros for the
negative half of classifier-free guidance, as diffusers' pipelines feed them.

Once installed, an adapter stays in the UNet: a run without a reference passes it zero embeddings at scale 0, and
the processors skip the image tokens entirely at scale 0, so such a run is the run without the adapter, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from glide_studio.pipelines.request import Request
from glide_studio.sd import hub, registry
from glide_studio.sd.components import SDModelSet
from glide_studio.sd.errors import SDModelError
from glide_studio.sd.image_encoder import image_embedding

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")


@dataclass
class LoadedIPAdapter:
    """The adapter installed in a model set's UNet, and the image encoder that reads its reference pictures."""

    name: str
    image_encoder: Any


def resolve(name: str, *, progress_class=None) -> tuple[Path, Path]:
    """(the adapter's .safetensors file, its image encoder's folder): a known name is fetched from the Hub (only
    its three files), a path names a local file with `image_encoder/` beside it."""
    known = registry.known_ip_adapter(name)
    if known is not None:
        folder = hub.fetch_files(known.repo_id, known.files, progress_class=progress_class)
        return folder / known.weights, folder / known.image_encoder
    path = Path(name).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SDModelError(f"{path.name} is a pickled adapter, which can run code when opened; use its .safetensors "
                           "version")
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        names = ", ".join(adapter.name for adapter in registry.KNOWN_IP_ADAPTERS)
        raise SDModelError(f"no IP-Adapter {name!r}: give a known name ({names}) or an adapter .safetensors file")
    encoder = path.parent / "image_encoder"
    if not (encoder / "config.json").is_file() or not (encoder / "model.safetensors").is_file():
        raise SDModelError(f"the IP-Adapter {path.name} needs its image encoder beside it, in {encoder} (config.json "
                           "and model.safetensors)")
    return path, encoder


def read_state_dict(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The adapter file split into its two parts, as diffusers' loader expects them."""
    from safetensors import SafetensorError, safe_open

    parts: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            for key in file.keys():
                part, _, rest = key.partition(".")
                if part in parts:
                    parts[part][rest] = file.get_tensor(key)
    except (SafetensorError, OSError) as error:
        raise SDModelError(f"{path.name} could not be read as an IP-Adapter: {error}") from error
    if not parts["image_proj"] or not parts["ip_adapter"]:
        raise SDModelError(f"{path.name} is not an IP-Adapter (it has no image_proj.* and ip_adapter.* weights)")
    return parts


def _check_fits(parts: dict, unet, name: str) -> None:
    """The base IP-Adapter (its projection turns the image embedding into 4 context tokens) for this UNet's width;
    the Plus, Full-face and FaceID kinds (other projections, other encoder outputs) and an adapter made for another
    model (SDXL's 2048-wide context on an SD 1.5 UNet) are refused by name."""
    weight = parts["image_proj"].get("proj.weight")
    if weight is None:
        raise SDModelError(f"the IP-Adapter {name} is not a base IP-Adapter (it has no image_proj.proj): the Plus, "
                           "Full-face and FaceID kinds are not supported")
    made_for, width = weight.shape[0] // 4, unet.config.cross_attention_dim
    if made_for != width:
        raise SDModelError(f"the IP-Adapter {name} was made for a UNet with {made_for}-wide cross-attention; this "
                           f"model's is {width} wide")


def attach(models: SDModelSet, name: str, *, progress_class=None) -> LoadedIPAdapter:
    """Installs the adapter `name` in the model set's UNet (once; another adapter replaces it) with its encoder."""
    from transformers import CLIPVisionModelWithProjection

    loaded = getattr(models, "ip_adapter", None)
    if loaded is not None and loaded.name == name:
        return loaded
    weights, encoder_folder = resolve(name, progress_class=progress_class)
    parts = read_state_dict(weights)
    _check_fits(parts, models.unet, name)
    try:
        models.unet._load_ip_adapter_weights([parts], low_cpu_mem_usage=False)
        encoder = CLIPVisionModelWithProjection.from_pretrained(encoder_folder, use_safetensors=True)
    except (KeyError, RuntimeError, ValueError, OSError) as error:
        raise SDModelError(f"the IP-Adapter {name} does not fit the model {models.name}: {error}") from error
    models.ip_adapter = LoadedIPAdapter(name, encoder.to(models.device, models.unet_dtype).eval())
    return models.ip_adapter


def attach_for(models: SDModelSet, request: Request, *, progress_class=None) -> None:
    """What a request needs of adapters: its own installed when it has a reference picture; nothing otherwise."""
    if request.ip_adapter_image is not None:
        attach(models, request.ip_adapter, progress_class=progress_class)


@torch.no_grad()
def added_conditioning(models: SDModelSet, request: Request, guided: bool) -> dict | None:
    """The UNet's `added_cond_kwargs` for this run: the reference's embedding per candidate (after the negative
    half's, under guidance), or zeros when the run has no reference; None when no adapter is installed."""
    loaded = getattr(models, "ip_adapter", None)
    if loaded is None:
        return None
    if request.ip_adapter_image is None:
        embedding = torch.zeros((1, int(loaded.image_encoder.config.projection_dim)))
    else:
        embedding = image_embedding(loaded.image_encoder, request.ip_adapter_image)
    negative = torch.zeros_like(embedding)
    rows = [negative[None]] * (request.batch if guided else 0) + [embedding[None]] * request.batch
    return {"image_embeds": [torch.cat([row.to(models.device, models.unet_dtype) for row in rows])]}


def set_scale(models: SDModelSet, request: Request) -> None:
    """The processors hold their scale; it is set from the request before every UNet call, so no earlier run's
    strength carries over (0 when the run has no reference: the image tokens are skipped)."""
    if getattr(models, "ip_adapter", None) is None:
        return
    scale = float(request.ip_adapter_scale) if request.ip_adapter_image is not None else 0.0
    for processor in models.unet.attn_processors.values():
        if hasattr(processor, "to_k_ip"):
            processor.scale = [scale] * len(processor.to_k_ip)
