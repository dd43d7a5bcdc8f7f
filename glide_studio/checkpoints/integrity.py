"""sha256 records beside each weights file (``<name>.sha256.json``) and verification against them."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointFormatError, HashNotRecordedError, IntegrityError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class HashRecord:
    sha256: str
    size: int
    source: str | None = None  # URL or the file it was converted from
    recorded_at: float | None = None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def sha256_file(path: Path, chunk_size: int = _CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def read_record(path: Path) -> HashRecord | None:
    """The recorded hash of ``path``, or None when none was recorded (or the record is unreadable)."""
    side = sidecar_path(path)
    try:
        payload = json.loads(side.read_text(encoding="utf-8"))
        return HashRecord(
            sha256=str(payload["sha256"]).lower(),
            size=int(payload["size"]),
            source=payload.get("source"),
            recorded_at=payload.get("recorded_at"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"the hash record {side} is unreadable ({exc}); delete it and the file, then download again"
        ) from exc


def write_record(path: Path, sha256: str, size: int, source: str | None = None) -> HashRecord:
    """Record the hash of ``path`` atomically (written to a temporary file, then renamed)."""
    record = HashRecord(sha256=sha256.lower(), size=size, source=source, recorded_at=time.time())
    payload = {"sha256": record.sha256, "size": record.size, "source": source,
               "recorded_at": record.recorded_at}
    _write_text_atomically(sidecar_path(path), json.dumps(payload, indent=1) + "\n")
    return record


def _write_text_atomically(path: Path, text: str) -> None:
    """A temporary file beside ``path``, renamed over it; a failed write (a full disk) leaves no temporary."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def verify(path: str | os.PathLike[str], *, require_record: bool = True) -> bool:
    """Check ``path`` against its recorded sha256 and size.

    Returns True when verified, False when no hash is recorded and ``require_record`` is False.
    Raises IntegrityError (with what differs and what to do) for a corrupted or tampered file, and
    HashNotRecordedError when no record exists and one is required.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {path}: no such file")
    record = read_record(path)
    if record is None:
        if require_record:
            raise HashNotRecordedError(
                f"no sha256 is recorded for {path} ({sidecar_path(path).name} is missing), so it cannot be "
                "verified; delete the file and download it again"
            )
        return False
    size = path.stat().st_size
    if size != record.size:
        raise IntegrityError(
            f"{path} is {size} bytes but {record.size} bytes were recorded when it was downloaded: "
            "the file is damaged or was changed; delete it and download it again"
        )
    actual = sha256_file(path)
    if actual != record.sha256:
        raise IntegrityError(
            f"{path} does not match its recorded sha256 (expected {record.sha256}, found {actual}): "
            "the file is corrupted or was tampered with; delete it and download it again"
        )
    return True


# --- What a finished download must look like ---------------------------------------------------------------
_TORCH_ZIP = b"PK\x03\x04"
_TORCH_LEGACY = b"\x80\x02"  # pickle protocol 2, as torch.save wrote before its zip format
_WEB_PAGE_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"{\"error", b"<error")


def check_checkpoint_file(path: Path) -> None:
    """Raise CheckpointFormatError unless ``path`` is a PyTorch checkpoint (zip or legacy) or a safetensors file.

    Cheap (the first bytes, and a zip's central directory): it runs on every first download, before the file
    is recorded, so that an error page or a login form is never stored as weights.
    """
    import zipfile

    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(_TORCH_ZIP):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("data.pkl") for name in archive.namelist()):
                    return
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointFormatError(
                f"{path.name} is a damaged zip file, not a PyTorch checkpoint ({exc})"
            ) from None
        raise CheckpointFormatError(f"{path.name} is a zip file but not a PyTorch checkpoint (no data.pkl in it)")
    if head.startswith(_TORCH_LEGACY) or _is_safetensors(head):
        return
    text = head.lstrip().lower()
    if text.startswith(_WEB_PAGE_STARTS):
        shown = head[:60].decode("utf-8", "replace").strip()
        raise CheckpointFormatError(
            f"{path.name} is a web page or a server message ({shown!r}…), not a checkpoint: the server did not "
            "send the file; nothing was stored"
        )
    raise CheckpointFormatError(
        f"{path.name} is not a PyTorch checkpoint or a safetensors file (it starts with {head[:16]!r}); "
        "nothing was stored"
    )


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 2 <= header_length < 100_000_000 and head[8:9] == b"{"


# --- The shipped demo weights: digests pinned in their json ---------------------------------------------------
PINNED_KEY = "sha256"
PIN_COMMAND = "python -m glide_studio.checkpoints.pin_demo_digests"


def pinned_digest(meta: Path) -> str | None:
    """The digest pinned in a demo model's json (``"sha256"``), or None when none is."""
    try:
        payload = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointFormatError(f"cannot read demo model metadata {meta}: {exc}") from exc
    value = payload.get(PINNED_KEY) if isinstance(payload, dict) else None
    return str(value).lower() if isinstance(value, str) else None


def verify_demo(weights: Path, meta: Path) -> None:
    """A shipped demo file against the digest pinned in its json, then its tensors for NaN and infinity."""
    expected = pinned_digest(meta)
    if expected is None:
        raise HashNotRecordedError(
            f"{meta.name} pins no sha256 for {weights.name}, so the shipped weights cannot be checked; "
            f"a developer who made new demo weights runs `{PIN_COMMAND}`"
        )
    actual = sha256_file(weights)
    if actual != expected:
        raise IntegrityError(
            f"{weights} is damaged: its sha256 is {actual}, but {meta.name} pins {expected}. Reinstall GLIDE "
            "Studio (or restore weights/ from the repository) to get the shipped file back"
        )
    check_finite(weights)


def check_finite(weights: Path) -> None:
    """Raise CheckpointFormatError naming the first tensor of a safetensors file that holds NaN or infinity."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as tensors:
            for key in tensors.keys():
                tensor = tensors.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    bad = int((~torch.isfinite(tensor)).sum())
                    raise CheckpointFormatError(
                        f"{weights.name} holds {bad} NaN or infinite value(s) in {key}: these weights would "
                        "give black or noise pictures, so they are refused"
                    )
    except SafetensorError as exc:
        raise CheckpointFormatError(f"{weights.name} is not a valid safetensors file: {exc}") from exc


def pin_digest(weights: Path, meta: Path) -> str:
    """Write ``weights``' sha256 into ``meta`` (key "sha256", other keys kept), atomically; refuses NaN weights."""
    check_finite(weights)
    digest = sha256_file(weights)
    try:
        payload = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointFormatError(f"cannot read demo model metadata {meta}: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointFormatError(f"{meta} does not hold a JSON object")
    payload[PINNED_KEY] = digest
    _write_text_atomically(meta, json.dumps(payload, indent=1) + "\n")
    return digest
