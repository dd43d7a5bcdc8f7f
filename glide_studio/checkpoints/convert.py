"""Loading state dicts safely (.pt with weights_only, or memory-mapped safetensors) and .pt -> safetensors."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .cache import SAFETENSORS_SUFFIX, file_lock
from .errors import CheckpointFormatError, MissingWeightsError, UnsafeCheckpointError
from .integrity import sha256_file, verify, write_record

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def load_state_dict_file(
    path: str | os.PathLike[str], *, check_hash: bool = True, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a .pt/.pth/.bin/.ckpt or .safetensors file.

    Pickles are read with ``torch.load(weights_only=True)``, so a file that would run code or build
    arbitrary objects is refused with UnsafeCheckpointError. safetensors files are memory-mapped.
    With ``check_hash``, a recorded sha256 (``<file>.sha256.json``) is verified first; files without a
    record (e.g. the shipped demo weights) load unchecked.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights file not found: {path}")
    if check_hash:
        verify(path, require_record=False)
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        state = _load_safetensors(path, device)
    elif suffix in PICKLE_SUFFIXES:
        state = _load_pickle(path, device)
    else:
        raise CheckpointFormatError(
            f"{path.name}: unsupported weights file type {suffix!r}; use .safetensors or one of "
            + ", ".join(PICKLE_SUFFIXES)
        )
    return _check_flat_state_dict(state, path)


def _load_safetensors(path: Path, device: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointFormatError(f"{path} is not a readable safetensors file: {exc}") from exc


def _load_pickle(path: Path, device: str) -> object:
    # mmap avoids a second in-memory copy of large checkpoints; only the zip format supports it.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it contains Python objects other than tensors (a pickle that "
                "could run code). Only plain state dicts of tensors are accepted; convert the file to "
                "safetensors in a trusted environment"
            ) from None
        raise CheckpointFormatError(f"{path} is not a readable PyTorch checkpoint: {exc}") from None
    except Exception as exc:  # a malformed pickle can make the unpickler fail in any way
        raise CheckpointFormatError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from None


def _check_flat_state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    bad = [key for key, value in state.items() if not isinstance(key, str) or not torch.is_tensor(value)]
    if bad:
        shown = ", ".join(repr(k) for k in bad[:5])
        raise CheckpointFormatError(
            f"{path} is not a flat state dict of tensors ({len(bad)} entries are not tensors, e.g. {shown})"
        )
    return state


def convert_to_safetensors(
    src: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None, *, check_hash: bool = True
) -> Path:
    """Write a .pt state dict as safetensors (default: same name, ``.safetensors``) and record its sha256.

    Returns the new file. The source is verified first when it has a recorded hash.
    """
    src = Path(src)
    dest = Path(dest) if dest is not None else src.with_suffix(SAFETENSORS_SUFFIX)
    if dest.resolve() == src.resolve():
        raise CheckpointFormatError(f"cannot convert {src} onto itself")
    state = load_state_dict_file(src, check_hash=check_hash)
    tensors = _unshared_contiguous(state)
    tmp = dest.with_name(dest.name + ".tmp")
    with file_lock(dest, timeout=-1):
        try:
            save_file(tensors, str(tmp), metadata={"format": "pt", "converted_from": src.name})
            write_record(dest, sha256_file(tmp), tmp.stat().st_size, source=str(src))
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def _unshared_contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory; official checkpoints have none, so copies are rare.
    seen: set[tuple[int, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        tensor = tensor.detach()
        storage_key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if storage_key in seen and tensor.numel() > 0:
            tensor = tensor.clone()
        else:
            seen.add(storage_key)
        out[key] = tensor.contiguous()
    return out
