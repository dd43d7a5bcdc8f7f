"""download_steps against a local HTTP server: full, resumed, failing, cancelled, offline, locked, proxied."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections import namedtuple

import pytest
from test_download_server import FAST, FakeCheckpointServer, clear_network_env, make_checkpoint_bytes

from glide_studio.checkpoints import (
    DownloadCancelledError,
    DownloadError,
    DownloadInterruptedError,
    DownloadLockedError,
    InsufficientDiskSpaceError,
    IntegrityError,
    OfflineError,
    download_steps,
    verify,
)
from glide_studio.checkpoints import download as download_module
from glide_studio.checkpoints.integrity import read_record, sidecar_path


@pytest.fixture(autouse=True)
def no_proxy_no_offline(monkeypatch):
    clear_network_env(monkeypatch)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return make_checkpoint_bytes(seed=1)


@pytest.fixture
def server(payload):
    with FakeCheckpointServer({"/ckpt.pt": payload}) as srv:
        yield srv


def test_full_download_records_hash_and_reports_progress(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    records = list(download_steps(server.url("/ckpt.pt"), dest, retries=0, **FAST))
    assert dest.read_bytes() == payload
    assert not (tmp_path / "ckpt.pt.part").exists()
    done = [r.bytes_done for r in records]
    assert done == sorted(done) and len(records) > 5
    assert all(r.bytes_total == len(payload) for r in records)
    assert records[-1].done and records[-1].path == dest and not any(r.done for r in records[:-1])
    assert records[-1].speed > 0
    record = read_record(dest)
    assert record.sha256 == hashlib.sha256(payload).hexdigest() and record.size == len(payload)
    assert record.source == server.url("/ckpt.pt")
    assert verify(dest) is True
    assert server.requests[0]["range"] is None


@pytest.mark.parametrize("mode", ["cut", "reset"])
def test_cut_download_errors_then_next_call_resumes(server, payload, tmp_path, mode):
    dest = tmp_path / "ckpt.pt"
    cut_at = 40_000
    server.set(mode, cut_at=cut_at, fail_requests=1)
    with pytest.raises(DownloadInterruptedError, match="interrupted.*resumes"):
        list(download_steps(server.url("/ckpt.pt"), dest, retries=0, **FAST))
    part = tmp_path / "ckpt.pt.part"
    assert not dest.exists() and part.read_bytes() == payload[: part.stat().st_size]
    assert 0 < part.stat().st_size <= cut_at
    resumed_at = part.stat().st_size
    records = list(download_steps(server.url("/ckpt.pt"), dest, retries=0, **FAST))
    assert dest.read_bytes() == payload
    assert server.requests[-1]["range"] == f"bytes={resumed_at}-"
    assert records[-1].resumed_from == resumed_at
    assert verify(dest)


def test_interruption_is_resumed_automatically_within_one_call(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    server.set("cut", cut_at=30_000, fail_requests=2)
    list(download_steps(server.url("/ckpt.pt"), dest, retries=1, **FAST))
    assert dest.read_bytes() == payload
    ranges = [r["range"] for r in server.requests]
    assert ranges == [None, "bytes=30000-", "bytes=60000-"]
    assert read_record(dest).sha256 == hashlib.sha256(payload).hexdigest()


def test_server_ignoring_range_restarts_from_zero(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    (tmp_path / "ckpt.pt.part").write_bytes(payload[:10_000])
    server.set("ignore_range")
    records = list(download_steps(server.url("/ckpt.pt"), dest, retries=0, **FAST))
    assert server.requests[0]["range"] == "bytes=10000-"
    assert dest.read_bytes() == payload and records[-1].resumed_from == 0
    assert verify(dest)


def test_part_longer_than_the_file_is_restarted(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    (tmp_path / "ckpt.pt.part").write_bytes(payload + b"extra")
    list(download_steps(server.url("/ckpt.pt"), dest, retries=0, **FAST))
    assert dest.read_bytes() == payload
    assert [r["range"] for r in server.requests] == [f"bytes={len(payload) + 5}-", None]


def test_corrupted_byte_is_caught_by_verify(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0x01
    dest.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        verify(dest)
    dest.write_bytes(bytes(data[:-1]))
    with pytest.raises(IntegrityError, match="bytes were recorded"):
        verify(dest)


def test_404_gives_clear_error_and_leaves_no_file(server, tmp_path):
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(DownloadError, match="HTTP 404"):
        list(download_steps(server.url("/missing.pt"), dest, **FAST))
    assert not dest.exists() and not (tmp_path / "ckpt.pt.part").exists()
    assert not sidecar_path(dest).exists()


@pytest.mark.parametrize("mode", ["stall_body", "stall_headers"])
def test_stalled_server_times_out_with_clear_error(server, payload, tmp_path, mode):
    dest = tmp_path / "ckpt.pt"
    server.set(mode, cut_at=20_000)
    with pytest.raises(DownloadInterruptedError, match=r"stalled: no data from the server for 0.3 s"):
        list(download_steps(server.url("/ckpt.pt"), dest, timeout=0.3, retries=0, chunk_size=8192))
    assert not dest.exists()
    server.release.set()
    if mode == "stall_body":
        kept = (tmp_path / "ckpt.pt.part").read_bytes()  # whole chunks only: a consistent prefix
        assert 0 < len(kept) <= 20_000 and kept == payload[: len(kept)]


def test_consumer_stopping_leaves_part_that_next_call_resumes(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    steps = download_steps(server.url("/ckpt.pt"), dest, **FAST)
    for record in steps:
        if record.bytes_done >= 3 * 8192:
            break
    steps.close()
    part = tmp_path / "ckpt.pt.part"
    kept = part.stat().st_size
    assert not dest.exists() and kept >= 3 * 8192 and part.read_bytes() == payload[:kept]
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))  # the lock was released
    assert dest.read_bytes() == payload
    assert server.requests[-1]["range"] == f"bytes={kept}-"


def test_cancel_event_raises_and_keeps_part(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    cancel = threading.Event()
    seen = []
    with pytest.raises(DownloadCancelledError, match="kept for resuming"):
        for record in download_steps(server.url("/ckpt.pt"), dest, cancel=cancel, **FAST):
            seen.append(record.bytes_done)
            if record.bytes_done >= 2 * 8192:
                cancel.set()
    part = tmp_path / "ckpt.pt.part"
    assert part.stat().st_size == seen[-1] and not dest.exists()
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert dest.read_bytes() == payload


def test_offline_mode_refuses_without_touching_the_network(server, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched in offline mode")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(OfflineError, match="offline mode"):
        list(download_steps(server.url("/ckpt.pt"), dest, offline=True, **FAST))
    monkeypatch.setenv("GLIDE_STUDIO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="not downloading ckpt.pt"):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert server.requests == [] and not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_lock_held_by_another_process_blocks_writing(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import filelock, sys; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
         "print('locked', flush=True); sys.stdin.read()",
         str(tmp_path / "ckpt.pt.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DownloadLockedError, match="being written by another process"):
            list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
        assert server.requests == [] and not (tmp_path / "ckpt.pt.part").exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert dest.read_bytes() == payload


def test_second_writer_in_the_same_process_is_refused(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    first = download_steps(server.url("/ckpt.pt"), dest, **FAST)
    next(first)  # holds the lock from here on
    with pytest.raises(DownloadLockedError):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    list(first)
    assert dest.read_bytes() == payload


def test_waiting_writer_finds_the_finished_file_without_downloading(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    first = download_steps(server.url("/ckpt.pt"), dest, **FAST)
    next(first)
    waiter_result = []
    waiter = threading.Thread(
        target=lambda: waiter_result.extend(
            download_steps(server.url("/ckpt.pt"), dest, lock_timeout=10, **FAST)
        )
    )
    waiter.start()
    time.sleep(0.1)
    list(first)
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(server.requests) == 1
    assert waiter_result[-1].done and waiter_result[-1].path == dest


def test_not_enough_disk_space_is_refused_before_writing(server, tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: Usage(10**9, 10**9, 1000))
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(InsufficientDiskSpaceError, match="not enough free disk space"):
        list(download_steps(server.url("/ckpt.pt"), dest, expected_size=10**9, **FAST))
    assert server.requests == []
    with pytest.raises(InsufficientDiskSpaceError):  # the size announced by the server
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert len(server.requests) == 1 and not dest.exists() and not (tmp_path / "ckpt.pt.part").exists()


def test_pinned_hash_mismatch_is_refused(server, tmp_path):
    dest = tmp_path / "ckpt.pt"
    with pytest.raises(IntegrityError, match="is expected"):
        list(download_steps(server.url("/ckpt.pt"), dest, sha256="0" * 64, **FAST))
    assert not dest.exists() and not (tmp_path / "ckpt.pt.part").exists()


def test_changed_file_on_server_is_refused_against_first_record(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    dest.unlink()  # the user deletes the file, the record stays
    server.files["/ckpt.pt"] = make_checkpoint_bytes(seed=99)
    with pytest.raises(IntegrityError, match="recorded at the first download"):
        list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert not dest.exists()
    assert read_record(dest).sha256 == hashlib.sha256(payload).hexdigest()


def test_proxy_from_environment_is_used(server, payload, tmp_path, monkeypatch):
    monkeypatch.setenv("http_proxy", server.base_url)
    dest = tmp_path / "ckpt.pt"
    list(download_steps("http://checkpoints.glide-studio.invalid/ckpt.pt", dest, **FAST))
    assert dest.read_bytes() == payload
    assert server.requests[0]["raw_path"] == "http://checkpoints.glide-studio.invalid/ckpt.pt"


def test_unknown_length_still_downloads(server, payload, tmp_path):
    server.behaviour.send_content_length = False
    dest = tmp_path / "ckpt.pt"
    records = list(download_steps(server.url("/ckpt.pt"), dest, expected_size=len(payload) + 7, **FAST))
    assert dest.read_bytes() == payload
    assert records[1].bytes_total == len(payload) + 7  # the hint stands in for the unknown length
    assert records[-1].bytes_total == len(payload)


def test_non_http_url_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="only http and https"):
        list(download_steps("file:///etc/passwd", tmp_path / "x.pt"))


def test_complete_part_is_finished_without_downloading_again(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    (tmp_path / "ckpt.pt.part").write_bytes(payload)  # as if stopped right before the rename
    records = list(download_steps(server.url("/ckpt.pt"), dest, **FAST))
    assert dest.read_bytes() == payload and records[-1].done
    assert [r["range"] for r in server.requests] == [f"bytes={len(payload)}-"]
    assert verify(dest)


def test_temporary_server_error_is_retried(server, payload, tmp_path):
    dest = tmp_path / "ckpt.pt"
    server.set("503", fail_requests=1)
    list(download_steps(server.url("/ckpt.pt"), dest, retries=1, **FAST))
    assert dest.read_bytes() == payload and len(server.requests) == 2
    server.set("503")
    with pytest.raises(DownloadError, match="HTTP 503"):
        list(download_steps(server.url("/ckpt.pt"), tmp_path / "other.pt", retries=1, **FAST))


def test_unreachable_server_says_so(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach the server"):
        list(download_steps(f"http://127.0.0.1:{port}/ckpt.pt", tmp_path / "ckpt.pt", **FAST))
    assert [p.name for p in tmp_path.iterdir()] in ([], ["ckpt.pt.lock"])
