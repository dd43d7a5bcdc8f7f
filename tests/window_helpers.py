"""The app's main window in a test: offscreen, its own settings file, on the given engine and picture."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from glide_studio.ui.main_window import MainWindow


def open_window(qtbot, tmp_path, engine, picture, show: bool = True) -> MainWindow:
    window = MainWindow(engine, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                        picture=picture, min_interval=0.0)
    qtbot.addWidget(window)
    if show:
        window.show()
        qtbot.waitExposed(window)
    return window


def run_to_the_end(qtbot, window, timeout: int = 120_000):
    """Runs the window's settings as the Run button does; (the finished run's result, the indices of the steps
    it showed)."""
    steps: list[int] = []
    window.controller.run_step.connect(lambda progress: steps.append(progress.index))
    with qtbot.waitSignal(window.controller.run_finished, timeout=timeout) as finished:
        window.run()
    return finished.args[0], steps
