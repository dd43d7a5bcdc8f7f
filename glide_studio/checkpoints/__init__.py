"""Checkpoints: the registry of known weights, the per-user cache, safe downloads, verification, loading.

No Qt here. Downloads are generators of progress records (``download_steps``), so the command line
(tqdm) and the app (a Qt dialog) drive the same code. The parts that need torch (conversion, loading) are
imported on first use, so that the registry, the cache and downloads (and ``glide-studio --help``) start at once.
"""

from importlib import import_module

from .cache import CACHE_ENV, cache_dir, file_lock
from .download import OFFLINE_ENV, DownloadProgress, download_steps, is_offline
from .errors import (
    CheckpointError,
    CheckpointFormatError,
    DownloadCancelledError,
    DownloadError,
    DownloadInterruptedError,
    DownloadLockedError,
    HashNotRecordedError,
    InsufficientDiskSpaceError,
    IntegrityError,
    MissingWeightsError,
    OfflineError,
    UnknownCheckpointError,
    UnsafeCheckpointError,
)
from .integrity import sha256_file, verify
from .registry import (
    DEMO_NAMES,
    OFFICIAL_NAMES,
    REGISTRY,
    CheckpointSpec,
    clip_encoders_for,
    demo_options,
    demo_paths,
    demo_weights_dir,
    get_spec,
    local_path,
)
from .store import ModelStatus, checkpoint_options, ensure_checkpoint, list_models

__all__ = [
    "load_network",
    "network_options",
    "CACHE_ENV",
    "DEMO_NAMES",
    "OFFICIAL_NAMES",
    "OFFLINE_ENV",
    "REGISTRY",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointSpec",
    "DownloadCancelledError",
    "DownloadError",
    "DownloadInterruptedError",
    "DownloadLockedError",
    "DownloadProgress",
    "HashNotRecordedError",
    "InsufficientDiskSpaceError",
    "IntegrityError",
    "MissingWeightsError",
    "ModelStatus",
    "OfflineError",
    "UnknownCheckpointError",
    "UnsafeCheckpointError",
    "cache_dir",
    "checkpoint_options",
    "clip_encoders_for",
    "convert_to_safetensors",
    "demo_options",
    "demo_paths",
    "demo_weights_dir",
    "download_steps",
    "ensure_checkpoint",
    "file_lock",
    "get_spec",
    "is_offline",
    "list_models",
    "load_state_dict_file",
    "local_path",
    "sha256_file",
    "verify",
]

_NEEDING_TORCH = {"convert_to_safetensors": "convert", "load_state_dict_file": "convert",
                  "load_network": "loading", "network_options": "loading"}


def __getattr__(name: str):
    module = _NEEDING_TORCH.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
