"""Closing the window during a download whose server went silent ends the process at once (the app as a
subprocess): the blocked read is interrupted, no invisible process is left holding the cache's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import filelock
from test_download_server import FakeCheckpointServer, make_checkpoint_bytes

_APP = textwrap.dedent(
    """
    import dataclasses, sys, threading, time
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from glide_studio.app import downloads
    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.checkpoints import registry, store
    from glide_studio.ui.main_window import MainWindow, run_app

    base_url, settings_path = sys.argv[1], sys.argv[2]

    def local_spec(name):
        spec = registry.get_spec(name)
        return dataclasses.replace(spec, url=base_url + "/" + spec.url.rsplit("/", 1)[-1], num_params=10_000)

    store.get_spec = local_spec
    fetch_returned = threading.Event()
    real_ensure = downloads._ensure

    def ensure(*args):
        try:
            real_ensure(*args)
        except Exception as error:
            print("fetch ended:", type(error).__name__, error, flush=True)
        finally:
            fetch_returned.set()

    QMessageBox.question = lambda *args, **kwargs: QMessageBox.StandardButton.Yes
    QMessageBox.warning = lambda parent, title, text, *rest: print("dialog:", title, text, flush=True)

    seen = []

    def start_download():
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))

        def close():
            print("closing at", time.monotonic(), flush=True)
            window.close()

        def first_bytes(name, done, total):
            if done > 0 and not seen:
                seen.append(name)
                print("receiving", name, flush=True)
                QTimer.singleShot(1000, close)  # by then every byte sent is read: the read waits on silence

        window.downloader.progress.connect(first_bytes)
        window.downloader._fetch = ensure
        print("started", window.download_glide(), flush=True)

    application = QApplication(["glide-studio"])  # the timer needs it; run_app takes this one
    QTimer.singleShot(200, start_download)
    status = run_app([], settings=QSettings(settings_path, QSettings.Format.IniFormat), engine=FakeEngine())
    # The transfer thread must have stopped by itself, not be killed blocked in a read as the process exits.
    print("fetch returned:", fetch_returned.wait(5), flush=True)
    sys.exit(status)
    """
)


def test_closing_the_window_mid_download_ends_the_process_and_frees_the_lock(tmp_path):
    with FakeCheckpointServer({"/base_inpaint.pt": make_checkpoint_bytes(seed=6)}) as server:
        server.set("stall_body", cut_at=20_000)  # then silence, far longer than the client's 30 s timeout
        server.behaviour.stall_seconds = 120
        env = {**os.environ, "GLIDE_STUDIO_CACHE": str(tmp_path / "cache"), "GLIDE_STUDIO_DATA": str(tmp_path / "data"),
               "QT_QPA_PLATFORM": "offscreen", "no_proxy": "*"}
        env.pop("GLIDE_STUDIO_OFFLINE", None)
        app = subprocess.Popen([sys.executable, "-c", _APP, server.base_url, str(tmp_path / "settings.ini")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            stdout, stderr = app.communicate(timeout=120)
        finally:
            if app.poll() is None:
                app.kill()
                app.communicate()
        exited_at = time.monotonic()  # CLOCK_MONOTONIC: the same clock in both processes
        closing = [line.split() for line in stdout.splitlines() if line.startswith("closing at")]
        assert "receiving base-inpaint" in stdout and closing, stdout + stderr
        assert app.returncode == 0 and "Traceback" not in stderr, stderr
        assert "fetch ended: DownloadCancelledError download cancelled" in stdout
        assert "fetch returned: True" in stdout
        # A read blocked on the silent server would have held the process for the client's 30 s timeout.
        assert exited_at - float(closing[0][2]) < 20
        assert any(thread.is_alive() for thread in server._handler_threads)  # the server never let go
    lock = filelock.FileLock(str(tmp_path / "cache" / "base-inpaint.pt.lock"))
    lock.acquire(timeout=0)
    lock.release()
    part = tmp_path / "cache" / "base-inpaint.pt.part"
    assert 0 < part.stat().st_size <= 20_000  # kept for the next start to resume
