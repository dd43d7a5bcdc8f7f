"""run_app: the whole application starts on the starter scene inside qasync's loop and quits cleanly."""

from __future__ import annotations

import asyncio

import numpy as np
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import STARTER_CAPTION, starter_scene
from glide_studio.ui.main_window import MainWindow, run_app


def test_run_app_opens_the_starter_scene_and_exits_when_the_window_closes(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    seen = {}

    def inspect_and_close():
        windows = [widget for widget in QApplication.topLevelWidgets() if isinstance(widget, MainWindow)]
        window = windows[-1]
        seen["picture"] = window.controller.document.picture.copy()
        seen["caption"] = window.controls.caption.text()
        seen["loop_running"] = asyncio.get_event_loop().is_running()
        seen["history"] = [node.caption for node in window.controller.history.nodes()]
        window.close()

    QTimer.singleShot(300, inspect_and_close)
    assert run_app([], settings=settings, engine=FakeEngine()) == 0
    asyncio.set_event_loop(None)
    assert np.array_equal(seen["picture"], starter_scene())
    assert seen["caption"] == STARTER_CAPTION
    assert seen["loop_running"]  # slots run inside the asyncio loop (qasync)
    assert seen["history"] == ["Starter scene"]
