"""Resumable, verified downloads as a generator of progress records.

``download_steps`` streams to ``<dest>.part``, resumes it with an HTTP Range request after an interruption,
checks the size against the server's, hashes while writing, records the sha256 beside the file and renames
the finished file into place atomically. Any consumer drives it: tqdm on the command line, a Qt dialog in
the app. Stopping the iteration (or setting ``cancel``) leaves the ``.part`` file for the next call.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .cache import file_lock
from .errors import (
    DownloadCancelledError,
    DownloadError,
    DownloadInterruptedError,
    InsufficientDiskSpaceError,
    IntegrityError,
    OfflineError,
)
from .integrity import read_record, sidecar_path, write_record

OFFLINE_ENV = "GLIDE_STUDIO_OFFLINE"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CHUNK = 256 * 1024
# Keep some room so that a full disk never leaves the rest of the system without space.
DISK_MARGIN = 64 * 1024 * 1024

_USER_AGENT = f"glide-studio/{__version__}"
_TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report. ``bytes_total`` is None when the server does not say and no hint was given."""

    bytes_done: int
    bytes_total: int | None
    speed: float  # bytes per second received during this call
    resumed_from: int = 0
    done: bool = False
    path: Path | None = None  # the final file, on the last record


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``$GLIDE_STUDIO_OFFLINE`` is set to a true value."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _check_disk_space(folder: Path, needed: int | None) -> None:
    if not needed or needed <= 0:
        return
    free = shutil.disk_usage(folder).free
    if needed + DISK_MARGIN > free:
        raise InsufficientDiskSpaceError(
            f"not enough free disk space in {folder}: the download needs {needed / 1e6:.1f} MB "
            f"(plus a {DISK_MARGIN / 1e6:.0f} MB margin) but only {free / 1e6:.1f} MB are free; "
            "free some space or choose another cache folder (GLIDE_STUDIO_CACHE)"
        )


def _hash_existing(part: Path, size: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(part, "rb") as handle:
        remaining = size
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _range_total(content_range: str) -> int | None:
    match = re.search(r"/(\d+)\s*$", content_range)
    return int(match.group(1)) if match else None


def _total_from_response(response: http.client.HTTPResponse, start: int) -> tuple[int, int | None]:
    """(offset the body starts at, full file size or None) from a 200 or 206 response."""
    if response.status == 206:
        match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
        if match is None:
            raise DownloadError("the server sent a partial response without a valid Content-Range header")
        total = None if match.group(3) == "*" else int(match.group(3))
        return int(match.group(1)), total
    length = response.headers.get("Content-Length")
    return 0, (int(length) if length and length.isdigit() else None)


class _Attempt:
    """State carried across resume attempts of one call."""

    def __init__(self) -> None:
        self.received = 0
        self.started = time.monotonic()

    def speed(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.received / elapsed if elapsed > 0 else 0.0


def _open(opener: urllib.request.OpenerDirector, url: str, start: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)


def download_steps(
    url: str,
    dest: str | os.PathLike[str],
    expected_size: int | None = None,
    *,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    chunk_size: int = DEFAULT_CHUNK,
    cancel: threading.Event | None = None,
    offline: bool | None = None,
    retries: int = 2,
    retry_delay: float = 1.0,
    lock_timeout: float = 0.0,
) -> Iterator[DownloadProgress]:
    """Download ``url`` to ``dest``, yielding DownloadProgress records; the last one has ``done=True``.

    ``expected_size`` is a hint used for the free-space check and for progress when the server gives no
    length. ``sha256`` pins the expected digest; otherwise the digest is recorded at the first download
    (``<dest>.sha256.json``) and a later download with a different digest is refused. ``timeout`` is how
    long the server may stay silent. Interruptions are resumed up to ``retries`` times before
    DownloadInterruptedError. An existing ``dest`` is not downloaded again. Proxies come from the
    environment (``http_proxy``, ``https_proxy``, ``no_proxy``) as urllib does by default.
    """
    dest = Path(dest)
    if is_offline(offline):
        raise OfflineError(
            f"offline mode is on ({OFFLINE_ENV} or --offline): not downloading {dest.name} from {url}"
        )
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(f"refusing to download from {url!r}: only http and https URLs are supported")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {dest.parent}: {exc}") from exc
    with file_lock(dest, timeout=lock_timeout):
        if dest.is_file():
            # Another process may have finished it while we waited for the lock.
            size = dest.stat().st_size
            yield DownloadProgress(size, size, 0.0, resumed_from=size, done=True, path=dest)
            return
        yield from _download_locked(
            url, dest, expected_size, sha256, timeout, chunk_size, cancel, retries, retry_delay
        )


def _download_locked(
    url: str,
    dest: Path,
    expected_size: int | None,
    pinned_sha256: str | None,
    timeout: float,
    chunk_size: int,
    cancel: threading.Event | None,
    retries: int,
    retry_delay: float,
) -> Iterator[DownloadProgress]:
    part = part_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    _check_disk_space(dest.parent, (expected_size - have) if expected_size else None)
    # A fresh opener reads the proxy settings from the environment at call time.
    opener = urllib.request.build_opener()
    attempt = _Attempt()
    resumed_from: int | None = None
    failures = 0
    while True:
        _raise_if_cancelled(cancel, part)
        have = part.stat().st_size if part.is_file() else 0
        try:
            response = _open(opener, url, have, timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have > 0:
                if _range_total(exc.headers.get("Content-Range", "")) == have:
                    # The part is already complete (e.g. stopped just before the rename).
                    digest, done = _hash_existing(part, have), have
                    resumed_from = have if resumed_from is None else resumed_from
                    break
                # The part file is no prefix of what the server has now: start over.
                part.unlink()
                continue
            if exc.code in _TRANSIENT_HTTP and failures < retries:
                failures += 1
                _sleep(retry_delay, cancel, part)
                continue
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError) and failures < retries:
                failures += 1
                _sleep(retry_delay, cancel, part)
                continue
            if isinstance(exc.reason, TimeoutError):
                raise _network_error(url, exc.reason, timeout, part) from None
            raise DownloadError(f"cannot reach the server for {url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            if failures < retries:
                failures += 1
                _sleep(retry_delay, cancel, part)
                continue
            raise _network_error(url, exc, timeout, part) from None
        with response:
            start, total = _total_from_response(response, have)
            if start != have:
                if start != 0:
                    # A partial answer for another range than asked: ask again for the whole file.
                    part.unlink(missing_ok=True)
                    continue
                # The server ignored our Range and sends everything: restart from zero.
                have = 0
            digest = _hash_existing(part, have) if have else hashlib.sha256()
            if resumed_from is None:
                resumed_from = have
            _check_disk_space(dest.parent, (total - have) if total is not None else None)
            known_total = total if total is not None else expected_size
            done = have
            yield DownloadProgress(done, known_total, attempt.speed(), resumed_from=resumed_from)
            interrupted: BaseException | None = None
            with open(part, "r+b" if have else "wb") as handle:
                handle.seek(have)
                handle.truncate()
                while True:
                    _raise_if_cancelled(cancel, part)
                    try:
                        block = response.read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        interrupted = exc
                        break
                    if not block:
                        break
                    handle.write(block)
                    digest.update(block)
                    done += len(block)
                    attempt.received += len(block)
                    yield DownloadProgress(done, known_total, attempt.speed(), resumed_from=resumed_from)
                handle.flush()
                os.fsync(handle.fileno())
        if total is not None and done > total:
            part.unlink()
            raise DownloadError(f"download of {url} failed: the server sent more bytes than announced")
        if interrupted is None and total is not None and done < total:
            interrupted = ConnectionError(f"connection closed after {done} of {total} bytes")
        if interrupted is not None:
            if done > have:
                failures = 0  # progress was made: only consecutive fruitless attempts count
            if failures < retries:
                failures += 1
                _sleep(retry_delay, cancel, part)
                continue
            raise _network_error(url, interrupted, timeout, part)
        break
    yield _finish(url, dest, part, digest.hexdigest(), done, pinned_sha256, attempt, resumed_from)


def _finish(url, dest, part, actual, size, pinned, attempt, resumed_from) -> DownloadProgress:
    if pinned is not None and actual != pinned.lower():
        part.unlink()
        raise IntegrityError(
            f"the download of {url} has sha256 {actual}, but {pinned.lower()} is expected; "
            "the partial file was removed, try again later"
        )
    previous = read_record(dest)
    if previous is not None and previous.sha256 != actual:
        part.unlink()
        raise IntegrityError(
            f"the download of {url} has sha256 {actual}, but {previous.sha256} was recorded at the first "
            f"download: the file on the server changed or the transfer was tampered with. If you trust "
            f"the new file, delete {sidecar_path(dest)} and download again"
        )
    write_record(dest, actual, size, source=url)
    os.replace(part, dest)
    return DownloadProgress(size, size, attempt.speed(), resumed_from=resumed_from, done=True, path=dest)


def _network_error(url: str, reason: object, timeout: float, part: Path) -> DownloadError:
    kept = ""
    if part.is_file():
        kept = f"; the partial download is kept at {part} and the next attempt resumes it"
    if isinstance(reason, TimeoutError):
        return DownloadInterruptedError(
            f"download of {url} stalled: no data from the server for {timeout:g} s{kept}"
        )
    if isinstance(reason, (OSError, http.client.HTTPException)):
        return DownloadInterruptedError(f"download of {url} was interrupted ({reason}){kept}")
    return DownloadError(f"download of {url} failed: {reason}{kept}")


def _raise_if_cancelled(cancel: threading.Event | None, part: Path) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelledError(f"download cancelled; the partial file {part} is kept for resuming")


def _sleep(seconds: float, cancel: threading.Event | None, part: Path) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        _raise_if_cancelled(cancel, part)
