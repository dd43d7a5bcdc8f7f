"""A Stable Diffusion model from the Hub, against a local server standing in for it (HF_ENDPOINT on 127.0.0.1):
only the files a run needs are fetched (never the pickled copies or the safety checker), a download cut half-way
is resumed where it stopped, and afterwards the model is found with HF_HUB_OFFLINE=1 and the server gone.

The command line runs in a child process, so that huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE
from its environment as it does for a user."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image
from sd_helpers import save_folder

REPO = "tester/tiny-sd-inpainting"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DECOYS = {"unet/diffusion_pytorch_model.bin": b"\x80pickle" * 64, "safety_checker/model.safetensors": b"x" * 512,
          "unet/diffusion_pytorch_model.fp16.safetensors": b"y" * 256, "README.md": b"# tiny\n"}
CUT_FILE = "unet/diffusion_pytorch_model.safetensors"
PADDING = 24 * 2**20
"""The UNet file is padded (in its safetensors metadata) past huggingface_hub's 10 MiB write chunk, so that a
cut after the first chunk leaves bytes on disk to resume from, as a cut in a real multi-GB download does."""
CUT_AT = 15 * 2**20


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # huggingface_hub opens 8 connections at once; a refused one closes its shared client

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.files = files
        self.log: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self.cut_once = {CUT_FILE}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, value) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> None:
        path = unquote(urlparse(self.path).path)
        self.server.log.append((method, path, self.headers.get("Range", "")))
        files = self.server.files
        if path.startswith(f"/api/models/{REPO}/revision/"):
            return self._json({"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]})
        if path.startswith(f"/api/models/{REPO}/tree/"):
            return self._json([{"type": "file", "path": name, "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest()} for name, data in files.items()])
        prefix = f"/{REPO}/resolve/"
        if not path.startswith(prefix):
            self.send_error(404)
            return
        name = path[len(prefix):].split("/", 1)[1]
        if name not in files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        data = files[name]
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][len("bytes="):].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if method == "HEAD":
            return
        if name in self.server.cut_once:  # the first download of the big file breaks off half-way
            self.server.cut_once.discard(name)
            self.wfile.write(data[start:CUT_AT])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")


@pytest.fixture
def hub(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_folder(tmp_path / "repo", seed=5)
    unet = folder / CUT_FILE
    save_file(load_file(unet), str(unet), metadata={"format": "pt", "padding": "." * PADDING})
    files = {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}
    files.update(DECOYS)
    server = FakeHub(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glide_studio", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])


def test_a_hub_model_is_fetched_with_progress_resumed_after_a_cut_and_found_offline(hub, tmp_path, user_data_dir,
                                                                                    monkeypatch):
    from glide_studio.sd.loading import is_present

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert not is_present(f"sd:{REPO}")  # what the model picker shows before the download
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_XET": "1", "OMP_NUM_THREADS": "1", "GLIDE_STUDIO_DATA": str(user_data_dir)}
    first = _cli(["sd-download", REPO], env)
    assert first.returncode == 0, first.stderr[-3000:]

    fetched = {path.split("/resolve/", 1)[1].split("/", 1)[1] for method, path, _ in hub.log
               if method == "GET" and "/resolve/" in path}
    needed = {name for name in hub.files if name not in DECOYS}
    assert fetched == needed  # every file a run needs, and none of the pickles, checker or duplicates
    resumed = [range_ for method, path, range_ in hub.log if method == "GET" and path.endswith(CUT_FILE) and range_]
    assert len(resumed) == 1 and 0 < int(resumed[0][len("bytes="):-1]) <= CUT_AT  # went on from what it had
    assert "%" in first.stderr or "it/s" in first.stderr or "B/s" in first.stderr  # a progress bar was drawn
    cached = next((tmp_path / "hf-home").rglob("snapshots/*/" + CUT_FILE))
    assert cached.read_bytes() == hub.files[CUT_FILE]

    assert is_present(f"sd:{REPO}")
    hub.shutdown()
    args = ["generate", "--model", f"sd:{REPO}", "--prompt", "a leaf", "--steps", "2", "--seed", "3", "--device",
            "cpu", "--precision", "fp32", "-o", str(tmp_path / "offline.png")]
    offline = _cli(args, {**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert np.asarray(Image.open(tmp_path / "offline.png")).shape == (32, 32, 3)
    assert Path(first.stdout.strip().splitlines()[-1]) == cached.parents[1]  # sd-download names the folder


def test_the_editor_downloads_a_hub_model_with_its_progress_bar_and_can_cancel(hub, tmp_path, monkeypatch, qtbot):
    import asyncio

    from glide_studio.app.downloads import ModelDownloader
    from glide_studio.sd.loading import is_present

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    hub.cut_once.clear()
    name = f"sd:{REPO}"
    downloader = ModelDownloader()
    progress, finished = [], []
    downloader.progress.connect(lambda *report: progress.append(report))
    downloader.finished.connect(lambda *outcome: finished.append(outcome))

    downloader.cancel()  # stopped at its first chunk: nothing is complete, and it says so
    assert not asyncio.run(downloader.download((name,)))
    assert finished.pop() == (False, "Download cancelled.") and not is_present(name)

    downloader._cancel.clear()
    assert asyncio.run(downloader.download((name,))), finished
    assert finished == [(True, "The Stable Diffusion model is ready.")]
    needed = sum(len(data) for file, data in hub.files.items() if file not in DECOYS)
    qtbot.waitUntil(lambda: bool(progress) and progress[-1][1] == needed)  # reports from the download thread, queued
    assert progress[-1] == (name, needed, needed) and len(progress) > 1
    assert all(done <= total for _, done, total in progress) and is_present(name)
