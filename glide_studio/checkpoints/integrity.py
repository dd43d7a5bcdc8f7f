"""sha256 records beside each weights file (``<name>.sha256.json``) and verification against them."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HashNotRecordedError, IntegrityError

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
    side = sidecar_path(path)
    tmp = side.with_name(side.name + ".tmp")
    payload = {"sha256": record.sha256, "size": record.size, "source": source,
               "recorded_at": record.recorded_at}
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, side)
    return record


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
