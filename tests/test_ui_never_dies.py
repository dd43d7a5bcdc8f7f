"""The window never dies on an exception, and the log has it (the app as its own process): an exception in a
slot, in a thread, in an asyncio task and in opening the file given at start each give a dialog, the traceback
lands in the log file with the start's versions and device, the model failing to load reaches a dialog, and the
app goes on and quits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_APP = textwrap.dedent(
    """
    import asyncio, sys, threading
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from glide_studio.app.errors import ModelUnavailableError
    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.ui.file_actions import FileActions
    from glide_studio.ui.main_window import MainWindow, run_app

    QMessageBox.warning = lambda parent, title, text, *rest: print("dialog:", title, "|", text.splitlines()[0],
                                                                   flush=True)

    def window():
        return next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))

    def in_a_slot():
        1 / 0

    def in_a_thread():
        threading.Thread(target=lambda: {}["missing key"], name="helper").start()

    def in_a_task():
        async def fails():
            raise ValueError("a task went wrong")
        asyncio.get_event_loop().create_task(fails())

    def still_alive():
        print("alive:", window().isVisible(), QApplication.desktopFileName(), flush=True)
        window().close()

    application = QApplication(["glide-studio"])
    QTimer.singleShot(300, in_a_slot)
    QTimer.singleShot(600, in_a_thread)
    QTimer.singleShot(900, in_a_task)
    QTimer.singleShot(1500, still_alive)
    def unforeseen(self, path):
        raise RuntimeError(f"{path} broke the loader")

    FileActions.open_path = unforeseen  # a file given at start that fails in a way nobody caught
    engine = FakeEngine()
    engine.prepare_error = ModelUnavailableError("the demo weights are missing")
    status = run_app(["odd.png"], settings=QSettings(sys.argv[1], QSettings.Format.IniFormat), engine=engine)
    print("exit:", status, flush=True)
    """
)


def test_exceptions_anywhere_are_logged_and_shown_and_the_window_lives_on(tmp_path):
    logs = tmp_path / "logs"
    env = {**os.environ, "GLIDE_STUDIO_LOG_DIR": str(logs), "GLIDE_STUDIO_DATA": str(tmp_path / "data"),
           "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _APP, str(tmp_path / "settings.ini")], env=env, text=True,
                          capture_output=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "dialog: The model could not be loaded | the demo weights are missing" in out
    assert "dialog: Something went wrong | ZeroDivisionError: division by zero" in out
    assert "dialog: Something went wrong | KeyError: 'missing key'" in out
    assert "dialog: Something went wrong | ValueError: a task went wrong" in out
    assert "dialog: Something went wrong | RuntimeError: odd.png broke the loader" in out
    assert "alive: True glide-studio" in out and out.rstrip().endswith("exit: 0")
    log = (logs / "glide-studio.log").read_text()
    assert "glide-studio 0.1.0 (editor) starting" in log and "Python 3." in log and "torch " in log
    assert "devices: cpu; runs on cpu" in log
    assert "ERROR glide_studio.errors [" in log and "uncaught exception\nTraceback (most recent call last):" in log
    assert "ZeroDivisionError: division by zero" in log and "in in_a_slot" in log
    assert "uncaught exception in helper\nTraceback" in log and "ValueError: a task went wrong" in log
    assert "ERROR glide_studio.worker" in log and "ModelUnavailableError: the demo weights are missing" in log
    assert log.rstrip().endswith("the editor closed")
