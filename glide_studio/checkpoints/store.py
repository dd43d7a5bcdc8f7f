"""Getting each registered checkpoint on demand (download, verify), and a status overview of all of them.

Where a checkpoint's file is, or would be, is the registry's to say (`cached_paths`, `local_path`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .download import DEFAULT_TIMEOUT, DownloadProgress, download_steps, is_offline
from .errors import CheckpointFormatError, IntegrityError, MissingWeightsError, OfflineError
from .integrity import check_checkpoint_file, read_record, verify, verify_demo
from .registry import REGISTRY, CacheArg, CheckpointSpec, cached_paths, demo_paths, get_spec, local_path

ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class ModelStatus:
    """What is known about one registered checkpoint on this machine.

    ``verified`` is True when the file matched its recorded sha256 (a demo model: the one pinned in its json)
    and is the kind of file it should be, False when it did not (see ``problem``), and None when it was not
    checked or no hash is recorded.
    """

    name: str
    present: bool
    size: int | None  # bytes on disk, None when absent
    verified: bool | None
    path: Path | None
    kind: str = "unet"
    source: str = "official"
    approx_size: int | None = None  # expected download size, for the UI
    problem: str | None = None


def checkpoint_options(name: str) -> dict[str, Any]:
    """The official-style options dict to build ``name``'s model with (a fresh copy)."""
    return get_spec(name).options_dict()


def ensure_checkpoint(
    name: str,
    *,
    progress: ProgressCallback | None = None,
    offline: bool | None = None,
    cache: CacheArg = None,
    verify_hash: bool = True,
    cancel: threading.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The path of checkpoint ``name``, downloading it first when needed (unless offline).

    Official checkpoints are verified against the sha256 recorded at their download (``verify_hash``);
    demo weights against the sha256 pinned in their json, and for NaN or infinite values. The first download
    is checked too: its size against the parameter count the registry gives (the official manifests), and its
    format (a PyTorch checkpoint, never an error page). ``progress`` receives every
    DownloadProgress record. Raises MissingWeightsError, OfflineError, IntegrityError or DownloadError
    subclasses with a readable message.
    """
    spec = get_spec(name)
    if spec.source == "demo":
        weights, meta = demo_paths(name)
        if verify_hash:
            verify_demo(weights, meta)
        return weights
    existing = local_path(name, cache)
    if existing is not None:
        if verify_hash:
            verify(existing, require_record=True)
        return existing
    pt, _ = cached_paths(name, cache)
    if is_offline(offline):
        raise OfflineError(
            f"checkpoint {name!r} is not in the cache ({pt.parent}) and offline mode is on; "
            "download it with `glide-studio download " + name + "` while online"
        )
    _download(spec, pt, progress, cancel, timeout)
    return pt


def expected_size_range(spec: CheckpointSpec) -> tuple[int, int] | None:
    """The bytes a checkpoint file of ``spec`` can hold: its parameters in fp16 (the least a checkpoint of them
    stores) up to fp32 plus the archive's own records (a few bytes per tensor, a 2 % and 8 MB allowance)."""
    if spec.num_params is None:
        return None
    fp32 = spec.num_params * 4
    return spec.num_params * 2, fp32 + fp32 // 50 + 8_000_000


def _download(spec: CheckpointSpec, dest: Path, progress, cancel, timeout: float) -> None:
    assert spec.url is not None
    for record in download_steps(
        spec.url, dest, spec.approx_size, sha256=spec.sha256, cancel=cancel, timeout=timeout, offline=False,
        size_range=expected_size_range(spec), check_file=check_checkpoint_file,
    ):
        if progress is not None:
            progress(record)


def model_status(name: str, cache: CacheArg = None, *, verify_hash: bool = True) -> ModelStatus:
    spec = get_spec(name)
    path = local_path(name, cache)
    common = {"kind": spec.kind, "source": spec.source, "approx_size": spec.approx_size}
    if path is None:
        problem = None
        if spec.source == "demo":
            try:
                demo_paths(name)
            except MissingWeightsError as exc:
                problem = str(exc)
        return ModelStatus(name, False, None, None, None, problem=problem, **common)
    size = path.stat().st_size
    verified: bool | None = None
    problem = None
    try:
        if spec.source == "demo":
            if verify_hash:
                verify_demo(*demo_paths(name))
                verified = True
        else:
            check_checkpoint_file(path)
            if verify_hash:
                verified = verify(path, require_record=False) or None
            elif read_record(path) is None:
                problem = "no sha256 recorded"
    except (IntegrityError, CheckpointFormatError) as exc:
        verified, problem = False, str(exc)
    if verified is None and spec.source == "official" and verify_hash:
        problem = "no sha256 recorded; delete the file and download it again"
    return ModelStatus(name, True, size, verified, path, problem=problem, **common)


def list_models(
    cache: CacheArg = None, *, verify_hash: bool = True, names: Iterable[str] | None = None
) -> list[ModelStatus]:
    """Status of every registered checkpoint (or of ``names``), in registry order.

    With ``verify_hash`` each present file with a recorded hash is hashed in full (seconds per GB).
    """
    selected = list(names) if names is not None else list(REGISTRY)
    return [model_status(name, cache, verify_hash=verify_hash) for name in selected]
