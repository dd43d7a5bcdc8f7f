"""Downloading weights runs as an asyncio task inside Qt's loop (qasync), reporting progress as signals."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from glide_studio.app.downloads import ModelDownloader
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import starter_scene
from glide_studio.checkpoints import DownloadProgress
from glide_studio.ui.main_window import MainWindow


def fake_fetch(fetched):
    def fetch(name, progress, cancel):
        for done in (0, 512, 1024):
            progress(DownloadProgress(done, 1024, 1.0))
        if name == "broken":
            raise OSError("server said 503")
        fetched.append(name)

    return fetch


def test_download_reports_progress_and_finishes_in_the_qt_loop(qtbot, qt_asyncio_loop):
    fetched, progress = [], []
    downloader = ModelDownloader(fake_fetch(fetched))
    downloader.progress.connect(lambda name, done, total: progress.append((name, done, total)))
    with qtbot.waitSignal(downloader.finished) as finished:
        ok = qt_asyncio_loop.run_until_complete(downloader.download(("a", "b")))
    assert ok and fetched == ["a", "b"] and finished.args == [True, "GLIDE weights are ready."]
    assert progress[:3] == [("a", 0, 1024), ("a", 512, 1024), ("a", 1024, 1024)]


def test_a_failed_download_gives_a_readable_message(qtbot, qt_asyncio_loop):
    downloader = ModelDownloader(fake_fetch([]))
    with qtbot.waitSignal(downloader.finished) as finished:
        assert not qt_asyncio_loop.run_until_complete(downloader.download(("broken",)))
    assert finished.args == [False, "Download failed: server said 503"]


def test_window_download_action_refreshes_models(qtbot, tmp_path, monkeypatch, qt_asyncio_loop):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(FakeEngine(), settings, picture=starter_scene(32))
    qtbot.addWidget(window)
    fetched = []
    window.downloader._fetch = fake_fetch(fetched)
    assert window.download_glide()
    assert not window.download_action.isEnabled()
    qt_asyncio_loop.run_until_complete(window.downloader.task)
    assert fetched == ["base-inpaint", "upsample-inpaint"]
    assert window.download_action.isEnabled() and window.progress.format() == "Downloaded"
    window.close()
