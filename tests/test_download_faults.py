"""Downloads that always end: every server fault against download_steps on 127.0.0.1 ends with a clear message.

The server cuts, stalls, trickles, ignores Range, answers the wrong range, announces more bytes than it sends
and serves web pages; the disk fills up. Each case asserts the message and what is left on disk.
"""

from __future__ import annotations

import errno
import threading

import pytest
from test_download_server import FAST, FakeCheckpointServer, clear_network_env, make_checkpoint_bytes

from glide_studio.checkpoints import (
    DownloadCancelledError,
    DownloadError,
    DownloadInterruptedError,
    InsufficientDiskSpaceError,
    download_steps,
    verify,
)
from glide_studio.checkpoints import download as download_module
from glide_studio.checkpoints.integrity import sidecar_path


@pytest.fixture(autouse=True)
def no_proxy_no_offline(monkeypatch):
    clear_network_env(monkeypatch)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return make_checkpoint_bytes(seed=4)


@pytest.fixture
def server(payload):
    with FakeCheckpointServer({"/ckpt.pt": payload}) as srv:
        yield srv


def handler_still_serving(server) -> bool:
    return any(thread.is_alive() for thread in server._handler_threads)


# --- every restart path counts toward one bounded budget ---------------------------------------------------
def test_server_ignoring_range_and_always_cutting_gives_up_after_the_retries(server, tmp_path):
    server.behaviour.ignore_range = True
    server.set("cut", cut_at=30_000)
    with pytest.raises(DownloadInterruptedError, match="interrupted.*kept at .*resumes"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", retries=2, **FAST))
    # the first request, then two that never get past byte 30000 again
    assert [r["range"] for r in server.requests] == [None, "bytes=30000-", "bytes=30000-"]


def test_partial_answers_for_the_wrong_range_end_after_the_retries(server, tmp_path):
    server.behaviour.range_shift = 7
    with pytest.raises(DownloadError, match="keeps sending a partial answer from byte 7 when byte 0 was asked"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", retries=2, **FAST))
    assert len(server.requests) == 3
    assert not (tmp_path / "ckpt.pt").exists() and not (tmp_path / "ckpt.pt.part").exists()


def test_content_length_longer_than_the_body_ends(server, payload, tmp_path):
    server.behaviour.extra_length = 1000
    server.behaviour.ignore_range = True
    with pytest.raises(DownloadInterruptedError, match=f"connection closed after {len(payload)} of "
                                                       f"{len(payload) + 1000} bytes"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", retries=2, **FAST))
    assert len(server.requests) == 3


def test_content_length_longer_than_the_body_is_finished_by_a_range_request(server, payload, tmp_path):
    # A server that honours Range says the part is already whole (416 with the real size): that is a finish.
    server.behaviour.extra_length = 1000
    dest = tmp_path / "ckpt.pt"
    list(download_steps(server.url("/ckpt.pt"), dest, retries=2, **FAST))
    assert dest.read_bytes() == payload and verify(dest)
    assert [r["range"] for r in server.requests] == [None, f"bytes={len(payload)}-"]


def test_resumes_that_each_make_progress_still_end_at_max_requests(server, payload, tmp_path):
    server.set("cut", cut_at=20_000)  # every answer is cut: 20 kB further each time
    with pytest.raises(DownloadInterruptedError, match=r"gave up after 3 requests to the server \(the last one: "
                                                       r"connection closed after 60000 of"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", retries=5, max_requests=3, **FAST))
    assert len(server.requests) == 3
    assert (tmp_path / "ckpt.pt.part").read_bytes() == payload[:60_000]


# --- slow, silent and cancelled transfers end at once ------------------------------------------------------
def test_a_trickle_below_the_minimum_speed_ends(server, payload, tmp_path):
    server.set("trickle")  # one byte every 50 ms
    with pytest.raises(DownloadInterruptedError, match=r"too slow: \d+ bytes/s over the last 0.5 s, below the "
                                                       r"1000 bytes/s accepted; the partial download is kept"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", min_speed=1000, speed_window=0.5,
                             **FAST))
    kept = (tmp_path / "ckpt.pt.part").read_bytes()
    assert 0 < len(kept) < 100 and kept == payload[: len(kept)]


def test_the_deadline_interrupts_a_read_blocked_on_a_silent_server(server, tmp_path):
    server.set("stall_body", cut_at=10_000)
    server.behaviour.stall_seconds = 30
    with pytest.raises(DownloadInterruptedError, match="did not finish within 0.5 s; the partial download is kept"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", deadline=0.5, **{**FAST, "timeout": 30}))
    assert handler_still_serving(server)  # the server is still silent: the read was cut, not answered


@pytest.mark.parametrize("mode", ["stall_body", "stall_headers"])
def test_cancel_interrupts_a_blocked_read_at_once(server, tmp_path, mode):
    server.set(mode, cut_at=10_000)
    server.behaviour.stall_seconds = 30
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        with pytest.raises(DownloadCancelledError, match="download cancelled"):
            list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", cancel=cancel,
                                 **{**FAST, "timeout": 30}))
        assert handler_still_serving(server)
    finally:
        timer.cancel()
    assert [t.name for t in threading.enumerate() if t.name == "download-watchdog"] == []


# --- what the server sends must be the file ----------------------------------------------------------------
def test_a_web_page_is_refused_and_nothing_is_stored(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Sign in</body></html>\n\n\n\n\n\n\n"
    assert len(page) == 55
    server.files["/ckpt.pt"] = page
    server.behaviour.content_type = "text/html; charset=utf-8"
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(DownloadError, match=r"answered with a web page \(text/html\), not the file"):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert not dest.exists() and not (tmp_path / "ckpt.pt.part").exists() and not sidecar_path(dest).exists()


def test_announced_and_final_sizes_outside_the_expected_range_are_refused(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(DownloadError, match=f"announces {len(payload):,} bytes, but the checkpoint holds "
                                            "1,000,000 to 2,000,000 bytes"):
        list(download_steps(server.url("/ckpt.pt"), dest, size_range=(1_000_000, 2_000_000), **FAST))
    server.behaviour.send_content_length = False  # only the final size can tell
    with pytest.raises(DownloadError, match=f"sent {len(payload):,} bytes"):
        list(download_steps(server.url("/ckpt.pt"), dest, size_range=(1_000_000, 2_000_000), **FAST))
    assert not dest.exists() and not (tmp_path / "ckpt.pt.part").exists() and not sidecar_path(dest).exists()


# --- a full disk ------------------------------------------------------------------------------------------
class _FillingFile:
    """A written file whose disk fills after ``room`` bytes (the bytes before that are written)."""

    def __init__(self, handle, room: int) -> None:
        self._handle, self._room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            self._handle.write(data[: self._room])
            self._room = 0
            self._handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def _disk_fills_after(monkeypatch, room: int) -> None:
    def filling_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return _FillingFile(handle, room) if ("w" in mode or "+" in mode) else handle

    monkeypatch.setattr(download_module, "open", filling_open, raising=False)


def test_a_full_disk_keeps_the_part_for_resuming_and_says_so(server, payload, tmp_path, monkeypatch):
    dest = tmp_path / "ckpt.pt"
    _disk_fills_after(monkeypatch, 50_000)
    with pytest.raises(InsufficientDiskSpaceError, match=r"is full \(it needs [\d.]+ MB more\): the 0.1 MB received "
                                                         r"so far are kept in .*ckpt.pt.part and the next attempt "
                                                         "resumes them"):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    kept = (tmp_path / "ckpt.pt.part").read_bytes()
    assert 40_000 < len(kept) <= 50_000 and kept == payload[: len(kept)]
    monkeypatch.undo()
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert dest.read_bytes() == payload and server.requests[-1]["range"] == f"bytes={len(kept)}-"


def test_a_disk_full_from_the_first_byte_leaves_nothing(server, tmp_path, monkeypatch):
    _disk_fills_after(monkeypatch, 0)
    with pytest.raises(InsufficientDiskSpaceError, match="is full .*: nothing was kept"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "ckpt.pt", **FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt.lock"]


def test_a_disk_full_while_recording_the_digest_leaves_no_temporary(server, payload, tmp_path, monkeypatch):
    from pathlib import Path

    real_write_text = Path.write_text

    def full_for_sidecars(self, text, *args, **kwargs):
        if self.name.endswith(".sha256.json.tmp"):
            real_write_text(self, text[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_for_sidecars)
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(InsufficientDiskSpaceError, match="kept in .*ckpt.pt.part"):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt.lock", "ckpt.pt.part"]
    assert (tmp_path / "ckpt.pt.part").read_bytes() == payload
