"""Resumable, verified downloads that always end, as a generator of progress records.

``download_steps`` streams to ``<dest>.part``, resumes it with an HTTP Range request after an interruption,
checks the size against the server's (and against what the caller expects), hashes while writing, records the
sha256 beside the file and renames the finished file into place atomically. Any consumer drives it: tqdm on the
command line, a Qt dialog in the app. Stopping the iteration (or setting ``cancel``) leaves the ``.part`` file
for the next call.

Every call ends: each new request after the first (a resume, a restart after the server ignored the Range, a
partial answer for the wrong range, a temporary HTTP error) spends one of ``max_requests``, and ``retries``
requests in a row that bring no byte beyond the furthest one reached give up; ``deadline`` bounds the whole
call and ``min_speed`` the slowest transfer accepted. A watchdog thread shuts the socket down when the call is
cancelled, runs past its deadline or trickles, so a read blocked on a silent server returns at once.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
DEFAULT_DEADLINE = 6 * 3600.0
"""A whole call: 1.6 GB at the slowest accepted speed would not fit, but no real line is that slow."""
DEFAULT_MIN_SPEED = 4096.0
DEFAULT_SPEED_WINDOW = 60.0
DEFAULT_MAX_REQUESTS = 40
# Keep some room so that a full disk never leaves the rest of the system without space.
DISK_MARGIN = 64 * 1024 * 1024

_USER_AGENT = f"glide-studio/{__version__}"
_TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

FileCheck = Callable[[Path], None]
"""Raises (a CheckpointError with a message) when a finished download is not what was asked for."""


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


def _total_from_response(response: http.client.HTTPResponse) -> tuple[int, int | None]:
    """(offset the body starts at, full file size or None) from a 200 or 206 response."""
    if response.status == 206:
        match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
        if match is None:
            raise DownloadError("the server sent a partial response without a valid Content-Range header")
        total = None if match.group(3) == "*" else int(match.group(3))
        return int(match.group(1)), total
    length = response.headers.get("Content-Length")
    return 0, (int(length) if length and length.isdigit() else None)


class _Watchdog:
    """Shuts the current connection down when the call is cancelled, passes its deadline or trickles.

    Each check runs every ``poll`` seconds on a thread of its own (or at once when ``cancel`` is set, since the
    thread waits on it), so a read blocked on a silent server never outlives the reason to stop.
    """

    def __init__(self, cancel: threading.Event | None, deadline: float, min_speed: float, window: float,
                 poll: float = 0.1) -> None:
        self.cancel = cancel
        self.started = time.monotonic()
        self.deadline_at = self.started + deadline
        self.deadline = deadline
        self.min_speed = min_speed
        self.window = window
        self.poll = poll
        self.reason: str | None = None  # "cancelled" | "deadline" | "slow", once tripped
        self.received = 0  # bytes, over the whole call
        self._socket: socket.socket | None = None
        self._window_start = (self.started, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()  # the thread sees it at its next poll (it never sets the caller's event)
        self._thread.join(5 * self.poll + 1)

    def attach(self, sock: socket.socket) -> None:
        """A new connection: the speed window starts again."""
        self._socket = sock
        self._window_start = (time.monotonic(), self.received)
        if self.reason is not None:
            self._shut(sock)

    def slow_speed(self) -> float:
        started, received = self._window_start
        elapsed = time.monotonic() - started
        return (self.received - received) / elapsed if elapsed > 0 else 0.0

    def _watch(self) -> None:
        wait = self.cancel.wait if self.cancel is not None else self._stop.wait
        while not self._stop.is_set():
            wait(self.poll)
            if self._stop.is_set():
                return
            reason = self._reason()
            if reason is not None:
                self.reason = reason
                if self._socket is not None:
                    self._shut(self._socket)
                return

    def _reason(self) -> str | None:
        now = time.monotonic()
        if self.cancel is not None and self.cancel.is_set():
            return "cancelled"
        if now >= self.deadline_at:
            return "deadline"
        started, received = self._window_start
        if self._socket is not None and now - started >= self.window:
            if self.received - received < self.min_speed * self.window:
                return "slow"
            self._window_start = (now, self.received)
        return None

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # Through a duplicate descriptor, so that a TLS socket's own state is left for its reader to see.
        try:
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            duplicate.close()


def _watched_connection(base: type[http.client.HTTPConnection], watchdog: _Watchdog):
    class WatchedConnection(base):
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    return WatchedConnection


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._connection = _watched_connection(http.client.HTTPConnection, watchdog)

    def http_open(self, req):
        return self.do_open(self._connection, req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)
        self._connection = _watched_connection(http.client.HTTPSConnection, watchdog)

    def https_open(self, req):
        return self.do_open(self._connection, req, context=self._tls)


def _open(opener: urllib.request.OpenerDirector, url: str, start: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)


@dataclass(frozen=True)
class _Limits:
    timeout: float
    chunk_size: int
    retries: int
    retry_delay: float
    max_requests: int
    size_range: tuple[int, int] | None
    check_file: FileCheck | None


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
    max_requests: int = DEFAULT_MAX_REQUESTS,
    deadline: float = DEFAULT_DEADLINE,
    min_speed: float = DEFAULT_MIN_SPEED,
    speed_window: float = DEFAULT_SPEED_WINDOW,
    size_range: tuple[int, int] | None = None,
    check_file: FileCheck | None = None,
) -> Iterator[DownloadProgress]:
    """Download ``url`` to ``dest``, yielding DownloadProgress records; the last one has ``done=True``.

    ``expected_size`` is a hint used for the free-space check and for progress when the server gives no
    length. ``sha256`` pins the expected digest; otherwise the digest is recorded at the first download
    (``<dest>.sha256.json``) and a later download with a different digest is refused. ``size_range`` (low,
    high) refuses a file whose announced or final size is outside it, and ``check_file`` looks at the finished
    file before it is recorded (its format); either refusal removes the partial file.

    ``timeout`` is how long the server may stay silent. Up to ``retries`` requests in a row that bring nothing
    new are retried, and ``max_requests`` bounds the requests of the call; ``deadline`` (seconds) bounds the
    whole call and ``min_speed`` (bytes/s, over each ``speed_window`` seconds) the slowest transfer accepted.
    An existing ``dest`` is not downloaded again. Proxies come from the environment (``http_proxy``,
    ``https_proxy``, ``no_proxy``) as urllib does by default. The server never sees a web page accepted: an
    answer of type text/html is refused.
    """
    dest = Path(dest)
    if is_offline(offline):
        raise OfflineError(
            f"offline mode is on ({OFFLINE_ENV} is set): not downloading {dest.name} from {url}"
        )
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(f"refusing to download from {url!r}: only http and https URLs are supported")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {dest.parent}: {exc}") from exc
    limits = _Limits(timeout, chunk_size, retries, retry_delay, max(1, max_requests), size_range, check_file)
    with file_lock(dest, timeout=lock_timeout):
        if dest.is_file():
            # Another process may have finished it while we waited for the lock.
            size = dest.stat().st_size
            yield DownloadProgress(size, size, 0.0, resumed_from=size, done=True, path=dest)
            return
        with _Watchdog(cancel, deadline, min_speed, speed_window) as watchdog:
            yield from _download_locked(url, dest, expected_size, sha256, limits, cancel, watchdog)


class _Budget:
    """The requests of one call: every restart path spends one, and only new bytes forgive fruitless ones."""

    def __init__(self, url: str, limits: _Limits) -> None:
        self.url, self.limits = url, limits
        self.requests = 0
        self.fruitless = 0  # requests in a row that brought no byte beyond ``furthest``
        self.furthest = 0

    def request(self) -> None:
        self.requests += 1

    def reached(self, offset: int) -> None:
        if offset > self.furthest:
            self.furthest = offset
            self.fruitless = 0

    def may_retry(self, problem: str) -> bool:
        """Spends one fruitless attempt; False when ``retries`` in a row were spent already. Raises once the
        call has made ``max_requests`` requests."""
        if self.fruitless >= self.limits.retries:
            return False
        if self.requests >= self.limits.max_requests:
            raise DownloadInterruptedError(
                f"download of {self.url} gave up after {self.requests} requests to the server (the last one: "
                f"{problem})"
            )
        self.fruitless += 1
        return True


def _download_locked(url, dest: Path, expected_size, pinned_sha256, limits: _Limits, cancel,
                     watchdog: _Watchdog) -> Iterator[DownloadProgress]:
    part = part_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    _check_disk_space(dest.parent, (expected_size - have) if expected_size else None)
    # A fresh opener reads the proxy settings from the environment at call time.
    opener = urllib.request.build_opener(_WatchedHTTP(watchdog), _WatchedHTTPS(watchdog))
    budget = _Budget(url, limits)
    budget.reached(have)
    resumed_from: int | None = None
    while True:
        _stop_if_tripped(watchdog, url, part, limits.timeout)
        budget.request()
        have = part.stat().st_size if part.is_file() else 0
        try:
            response = _open(opener, url, have, limits.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            _stop_if_tripped(watchdog, url, part, limits.timeout)
            if exc.code == 416 and have > 0:
                if _range_total(exc.headers.get("Content-Range", "")) == have:
                    # The part is already complete (e.g. stopped just before the rename).
                    digest, done = _hash_existing(part, have), have
                    resumed_from = have if resumed_from is None else resumed_from
                    break
                # The part file is no prefix of what the server has now: start over (once: without a part
                # there is no Range to refuse; max_requests still counts the request).
                part.unlink()
                continue
            if exc.code in _TRANSIENT_HTTP and budget.may_retry(f"HTTP {exc.code}"):
                _sleep(limits.retry_delay, watchdog, url, part, limits.timeout)
                continue
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            _stop_if_tripped(watchdog, url, part, limits.timeout)
            if isinstance(exc.reason, TimeoutError) and budget.may_retry(f"no answer for {limits.timeout:g} s"):
                _sleep(limits.retry_delay, watchdog, url, part, limits.timeout)
                continue
            if isinstance(exc.reason, TimeoutError):
                raise _network_error(url, exc.reason, limits.timeout, part) from None
            raise DownloadError(f"cannot reach the server for {url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            _stop_if_tripped(watchdog, url, part, limits.timeout)
            if budget.may_retry(str(exc) or type(exc).__name__):
                _sleep(limits.retry_delay, watchdog, url, part, limits.timeout)
                continue
            raise _network_error(url, exc, limits.timeout, part) from None
        with response:
            _refuse_web_page(response, url, part)
            start, total = _total_from_response(response)
            if start != have:
                if start != 0:
                    # A partial answer for another range than asked: ask again for the whole file.
                    part.unlink(missing_ok=True)
                    problem = f"a partial answer from byte {start} when byte {have} was asked for"
                    if budget.may_retry(problem):
                        continue
                    raise DownloadError(f"download of {url} failed: the server keeps sending {problem}")
                # The server ignored our Range and sends everything: restart from zero.
                have = 0
            _check_size(url, part, total, limits.size_range, announced=True)
            digest = _hash_existing(part, have) if have else hashlib.sha256()
            if resumed_from is None:
                resumed_from = have
            _check_disk_space(dest.parent, (total - have) if total is not None else None)
            known_total = total if total is not None else expected_size
            done = have
            yield DownloadProgress(done, known_total, _speed(watchdog), resumed_from=resumed_from)
            interrupted: BaseException | None = None
            try:
                with open(part, "r+b" if have else "wb") as handle:
                    handle.seek(have)
                    handle.truncate()
                    while True:
                        _stop_if_tripped(watchdog, url, part, limits.timeout)
                        try:
                            block = response.read1(limits.chunk_size)
                        except (OSError, ValueError, http.client.HTTPException) as exc:
                            interrupted = exc
                            break
                        if not block:
                            break
                        handle.write(block)
                        digest.update(block)
                        done += len(block)
                        watchdog.received += len(block)
                        if total is not None and done > total:
                            break
                        yield DownloadProgress(done, known_total, _speed(watchdog), resumed_from=resumed_from)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                if exc.errno in _DISK_FULL:
                    raise _disk_full(dest, part, total) from None
                raise
        _stop_if_tripped(watchdog, url, part, limits.timeout)
        if total is not None and done > total:
            part.unlink()
            raise DownloadError(f"download of {url} failed: the server sent more bytes than announced")
        budget.reached(done)
        if interrupted is None and total is not None and done < total:
            interrupted = ConnectionError(f"connection closed after {done} of {total} bytes")
        if interrupted is not None:
            if budget.may_retry(str(interrupted)):
                _sleep(limits.retry_delay, watchdog, url, part, limits.timeout)
                continue
            raise _network_error(url, interrupted, limits.timeout, part)
        break
    _check_size(url, part, done, limits.size_range, announced=False)
    if limits.check_file is not None:
        try:
            limits.check_file(part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    yield _finish(url, dest, part, digest.hexdigest(), done, pinned_sha256, watchdog, resumed_from)


def _speed(watchdog: _Watchdog) -> float:
    elapsed = time.monotonic() - watchdog.started
    return watchdog.received / elapsed if elapsed > 0 else 0.0


def _refuse_web_page(response, url: str, part: Path) -> None:
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} failed: the server answered with a web page ({kind}), not the file; "
            "it may be behind a login or captive portal, or the address has moved"
        )


def _check_size(url: str, part: Path, size: int | None, size_range, *, announced: bool) -> None:
    if size is None or size_range is None:
        return
    low, high = size_range
    if low <= size <= high:
        return
    part.unlink(missing_ok=True)
    what = "announces" if announced else "sent"
    raise DownloadError(
        f"download of {url} failed: the server {what} {size:,} bytes, but the checkpoint holds "
        f"{low:,} to {high:,} bytes; this is not the expected file (nothing was kept)"
    )


def _disk_full(dest: Path, part: Path, total: int | None) -> InsufficientDiskSpaceError:
    kept = part.stat().st_size if part.is_file() else 0
    need = f" (it needs {(total - kept) / 1e6:.1f} MB more)" if total is not None else ""
    if kept:
        where = f"the {kept / 1e6:.1f} MB received so far are kept in {part} and the next attempt resumes them"
    else:
        part.unlink(missing_ok=True)
        where = "nothing was kept"
    return InsufficientDiskSpaceError(
        f"the disk holding {dest.parent} is full{need}: {where}; free some space or choose another "
        "cache folder (GLIDE_STUDIO_CACHE)"
    )


def _finish(url, dest, part, actual, size, pinned, watchdog, resumed_from) -> DownloadProgress:
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
    try:
        write_record(dest, actual, size, source=url)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise _disk_full(dest, part, size) from None
        raise
    os.replace(part, dest)
    return DownloadProgress(size, size, _speed(watchdog), resumed_from=resumed_from, done=True, path=dest)


def _network_error(url: str, reason: object, timeout: float, part: Path) -> DownloadError:
    if isinstance(reason, TimeoutError):
        return DownloadInterruptedError(
            f"download of {url} stalled: no data from the server for {timeout:g} s{_kept(part)}"
        )
    if isinstance(reason, (OSError, http.client.HTTPException)):
        return DownloadInterruptedError(f"download of {url} was interrupted ({reason}){_kept(part)}")
    return DownloadError(f"download of {url} failed: {reason}{_kept(part)}")


def _kept(part: Path) -> str:
    if part.is_file():
        return f"; the partial download is kept at {part} and the next attempt resumes it"
    return ""


def _stop_if_tripped(watchdog: _Watchdog, url: str, part: Path, timeout: float) -> None:
    reason = watchdog.reason or watchdog._reason()
    if reason is None:
        return
    watchdog.reason = reason
    if reason == "cancelled":
        raise DownloadCancelledError(f"download cancelled; the partial file {part} is kept for resuming")
    if reason == "deadline":
        raise DownloadInterruptedError(
            f"download of {url} did not finish within {watchdog.deadline:g} s{_kept(part)}"
        )
    raise DownloadInterruptedError(
        f"download of {url} is too slow: {watchdog.slow_speed():.0f} bytes/s over the last "
        f"{watchdog.window:g} s, below the {watchdog.min_speed:g} bytes/s accepted{_kept(part)}"
    )


def _sleep(seconds: float, watchdog: _Watchdog, url: str, part: Path, timeout: float) -> None:
    if watchdog.cancel is None:
        time.sleep(min(seconds, max(0.0, watchdog.deadline_at - time.monotonic())))
    else:
        watchdog.cancel.wait(seconds)
    _stop_if_tripped(watchdog, url, part, timeout)
