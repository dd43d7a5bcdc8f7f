"""Desktop conventions in the real window: Help (About, shortcuts, log folder), File ▸ New and Open Recent,
standard keys, the saved layout, pictures dropped as data, crisp icons, and every run in the log."""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QSettings, QSize, Qt
from PySide6.QtGui import QDesktopServices, QDropEvent, QImage, QKeySequence
from PySide6.QtWidgets import QDockWidget
from window_helpers import open_window

from glide_studio import __version__
from glide_studio.app.fake_engine import FakeEngine
from glide_studio.app.starter import starter_scene
from glide_studio.logs import LOG_DIR_ENV
from glide_studio.ui import icons
from glide_studio.ui.help_menu import about_text, open_log_folder, shortcut_rows
from glide_studio.ui.main_window import MainWindow
from glide_studio.ui.new_canvas import new_canvas


def _menu(window, title):
    return next(action.menu() for action in window.menuBar().actions() if action.text().replace("&", "") == title)


def _texts(menu):
    return [action.text().replace("&", "") for action in menu.actions() if not action.isSeparator()]


def test_help_menu_has_about_shortcuts_and_the_log_folder(qtbot, tmp_path, monkeypatch):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    assert _texts(_menu(window, "Help")) == ["Keyboard shortcuts…", "Open log folder", "About GLIDE Studio",
                                            "About Qt"]
    about = about_text()
    assert f"GLIDE Studio {__version__}" in about and "MODEL_CARD.md" in about and "model-card.md" in about
    assert "Qt 6 through PySide6: LGPL v3" in about and "CLIP's BPE vocabulary" in about
    rows = dict(shortcut_rows(window))
    assert rows["Open"].startswith("Ctrl+O")  # and the keyboard's Open key, where the platform has one
    assert rows["Run"].startswith("Ctrl+Return") and rows["Undo"].startswith("Ctrl+Z")
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    assert open_log_folder()
    assert opened == [os.environ[LOG_DIR_ENV]]


def test_standard_actions_use_the_platforms_standard_keys(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32), show=False)
    actions = {action.text().replace("&", ""): action for action in window.actions()}
    for name, key in (("Open…", QKeySequence.StandardKey.Open), ("Save project", QKeySequence.StandardKey.Save),
                      ("Quit", QKeySequence.StandardKey.Quit), ("New…", QKeySequence.StandardKey.New),
                      ("Paste picture", QKeySequence.StandardKey.Paste)):
        assert actions[name].shortcuts() == QKeySequence.keyBindings(key), name
    assert window.undo_action.shortcuts() == QKeySequence.keyBindings(QKeySequence.StandardKey.Undo)
    assert QKeySequence("Ctrl+Shift+Z") in window.redo_action.shortcuts()


def test_open_recent_lists_the_stored_files_and_opens_them(qtbot, tmp_path, monkeypatch):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    Image.fromarray(np.full((20, 30, 3), 10, np.uint8)).save(first)
    Image.fromarray(np.full((24, 36, 3), 200, np.uint8)).save(second)
    window.preferences.add_recent_file(str(first))
    window.preferences.add_recent_file(str(second))
    window.recent_menu.rebuild()
    assert _texts(window.recent_menu) == ["1 second.png", "2 first.png", "Clear the list"]
    window.recent_menu.actions()[1].trigger()
    assert window.controller.document.picture.shape == (20, 30, 3)
    assert window.preferences.recent_files()[0] == str(first)  # opened: now the newest
    first.unlink()
    errors = []
    monkeypatch.setattr("glide_studio.ui.dialogs.show_error", lambda parent, title, text: errors.append(text))
    window.recent_menu.rebuild()
    window.recent_menu.actions()[0].trigger()
    assert errors and "is no longer there" in errors[0]
    assert window.preferences.recent_files() == [str(second)]
    window.recent_menu.clear_list()
    window.recent_menu.rebuild()
    assert _texts(window.recent_menu) == ["No recent files"]


def test_file_new_starts_a_white_canvas_of_the_chosen_size(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    assert new_canvas(window, (300, 200))
    picture = window.controller.document.picture
    assert picture.shape == (200, 300, 3) and (picture == 255).all()
    assert window.controller.history.current.caption == "New 300×200"
    assert window.windowTitle().startswith("untitled")


def test_window_geometry_and_dock_layout_come_back(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(FakeEngine(), settings, picture=starter_scene(32))
    qtbot.addWidget(window)
    window.show()
    history = window.findChild(QDockWidget, "historyDock")
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, history)
    qtbot.wait(50)
    # 790 px: narrower than the offscreen screen's 800, unless this layout needs more (the window then restores to
    # its minimum, which a screen narrower than that clamps to as well).
    chosen = window.minimumSizeHint().expandedTo(QSize(790, 690))
    window.resize(chosen)
    qtbot.wait(50)
    window.close()
    again = MainWindow(FakeEngine(), QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                       picture=starter_scene(32))
    qtbot.addWidget(again)
    again.show()
    assert again.size() == chosen
    assert again.dockWidgetArea(again.findChild(QDockWidget, "historyDock")) == Qt.DockWidgetArea.LeftDockWidgetArea
    again.close()


def test_a_picture_dropped_as_data_opens(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    image = QImage(40, 30, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.red)
    data = QMimeData()
    data.setImageData(image)
    event = QDropEvent(QPoint(5, 5), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.canvas.dropEvent(event)
    picture = window.controller.document.picture
    assert picture.shape == (30, 40, 3) and (picture == [255, 0, 0]).all()
    assert window.controller.history.current.caption == "Dropped picture"


def test_icons_are_drawn_at_the_screens_pixel_density(qapp):
    icon = icons.run()
    for scale in (1.0, 1.5, 3.0):
        pixmap = icon.pixmap(QSize(24, 24), scale)
        assert pixmap.width() == round(24 * scale) and pixmap.devicePixelRatio() == scale
        assert not pixmap.toImage().isNull() and pixmap.toImage().pixelColor(12 * scale, 12 * scale).alpha() > 0
    assert QSize(256, 256) in icons.app_icon().availableSizes()


def test_every_run_is_logged_with_its_settings_and_outcome(qtbot, tmp_path, caplog):
    window = open_window(qtbot, tmp_path, FakeEngine(), starter_scene(32))
    window.controller.document.set_mask_array(np.pad(np.ones((8, 8)), 12))
    window.controls.caption.setText("a red circle")
    with caplog.at_level(logging.INFO, logger="glide_studio"):
        with qtbot.waitSignal(window.controller.run_finished, timeout=10_000):
            window.run()
    lines = [record.getMessage() for record in caplog.records if record.name == "glide_studio.runs"]
    started = next(line for line in lines if line.startswith("run started on cpu: {"))
    assert '"prompt": "a red circle"' in started and '"mode": "inpaint"' in started
    assert any(line.startswith("run finished: ") and "candidate(s) of 32x32 on cpu (fp32)" in line for line in lines)
