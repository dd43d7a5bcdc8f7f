"""Safe, strict loading of state dicts into our networks.

Nothing here unpickles arbitrary objects: ``.pt`` files are read with ``weights_only=True`` and
``.safetensors`` through safetensors. Every failure names the file and what is wrong with it.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class WeightsError(Exception):
    """A weights file that cannot be used: unreadable, unsafe, truncated, or for another model."""


def read_state_dict(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` mapping from ``.safetensors`` or ``.pt`` without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file is empty: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path.name} is not a valid safetensors file (truncated or corrupt?): {exc}") from exc
    else:
        state = _read_torch_file(path, device)
    return state


def _read_torch_file(path: Path, device) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path.name} was refused: it contains pickled objects other than tensors, which could run code "
            f"when loaded. Only plain state dicts (or .safetensors) are accepted. Details: {str(exc)[:300]}"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path.name} could not be read (truncated or corrupt file?): {str(exc)[:300]}") from exc
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} does not hold a flat state dict of tensors")
    return dict(obj)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "weights") -> None:
    """Raise a WeightsError naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or misshaped):
        return
    name = type(model).__name__
    variant = getattr(getattr(model, "config", None), "variant", None)
    lines = [f"{source} does not fit this {name}{f' ({variant})' if variant else ''}:"]
    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshaped)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            lines.append(f"  {title}: {shown}")
    first_conv = "input_blocks.0.0.weight"
    if first_conv in state and first_conv in expected and state[first_conv].shape != expected[first_conv].shape:
        lines.append(
            f"  the first conv takes {state[first_conv].shape[1]} input channels in the file but "
            f"{expected[first_conv].shape[1]} in the model: the file is for another GLIDE variant "
            "(3 = base, 6 = upsample, 7 = base-inpaint, 10 = upsample-inpaint)"
        )
    raise WeightsError("\n".join(lines))


def load_weights(model: nn.Module, path_or_state: str | Path | Mapping[str, torch.Tensor]) -> nn.Module:
    """Strictly load a checkpoint (path or state dict) into ``model``, keeping the model's dtypes."""
    if isinstance(path_or_state, Mapping):
        state, source = dict(path_or_state), "state dict"
    else:
        state, source = read_state_dict(path_or_state), Path(path_or_state).name
    check_state_dict(model, state, source)
    own = model.state_dict()
    converted = {k: v.to(own[k].dtype) for k, v in state.items()}
    # assign=True lets a model built on the meta device take the file's tensors without a second copy.
    device = next((p.device for p in model.parameters()), torch.device("meta"))
    if device.type != "meta":
        converted = {k: v.to(device) for k, v in converted.items()}
    model.load_state_dict(converted, strict=True, assign=True)
    return model
