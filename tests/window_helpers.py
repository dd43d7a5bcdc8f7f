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
