"""Help: the keyboard shortcuts, the log folder, About (version, licences, model cards) and About Qt."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QMessageBox, QTableWidget, QTableWidgetItem, QVBoxLayout

from glide_studio import __version__
from glide_studio.logs import log_dir

LICENCES = (
    ("GLIDE Studio", "MIT licence"),
    ("OpenAI GLIDE (filtered) weights and architecture", "MIT licence, OpenAI (glide-text2im)"),
    ("CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt)", "MIT licence, OpenAI (CLIP)"),
    ("The demo models (shapes world)", "MIT licence, trained by the GLIDE Studio authors"),
    ("Qt 6 through PySide6", "LGPL v3, The Qt Company"),
    ("PyTorch", "BSD-3-Clause"),
    ("NumPy, Pillow, safetensors, platformdirs", "BSD / HPND / Apache-2.0 / MIT"),
)
OPENAI_MODEL_CARD = "https://github.com/openai/glide-text2im/blob/main/model-card.md"


def about_text() -> str:
    from glide_studio.checkpoints.registry import demo_weights_dir

    card = demo_weights_dir() / "MODEL_CARD.md"
    rows = "".join(f"<li>{escape(what, quote=False)}: {escape(licence, quote=False)}</li>"
                   for what, licence in LICENCES)
    return (
        f"<h3>GLIDE Studio {escape(__version__)}</h3>"
        "<p>Text-guided image editing with OpenAI's GLIDE diffusion models.</p>"
        f"<p><b>Licences</b></p><ul>{rows}</ul>"
        "<p><b>Model cards</b>: the demo models' card is "
        f"<a href='{QUrl.fromLocalFile(str(card)).toString()}'>{escape(str(card))}</a>; OpenAI's card for GLIDE "
        f"(filtered), its data and its limits: <a href='{OPENAI_MODEL_CARD}'>{OPENAI_MODEL_CARD}</a>.</p>"
        f"<p>Log files: {escape(str(log_dir()))}</p>"
    )


def shortcut_rows(window) -> list[tuple[str, str]]:
    """(action, its shortcuts) for every action of the window's menus that has a shortcut, in menu order."""
    rows, seen = [], set()
    for menu in window.menuBar().findChildren(QMenu):
        for action in menu.actions():
            keys = [key.toString(QKeySequence.SequenceFormat.NativeText) for key in action.shortcuts()]
            if keys and id(action) not in seen:
                seen.add(id(action))
                rows.append((action.text().replace("&", "").rstrip("…."), ", ".join(keys)))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        for row, (name, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(460, 520)


def open_log_folder() -> bool:
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def build_help_menu(window) -> QMenu:
    menu = window.menuBar().addMenu("&Help")
    window.shortcuts_action = _add(window, menu, "&Keyboard shortcuts…", lambda: ShortcutsDialog(window).exec(),
                                   QKeySequence.StandardKey.HelpContents)
    window.open_log_action = _add(window, menu, "Open &log folder", open_log_folder)
    menu.addSeparator()
    window.about_action = _add(window, menu, "&About GLIDE Studio", lambda: QMessageBox.about(
        window, "About GLIDE Studio", about_text()))
    window.about_action.setMenuRole(QAction.MenuRole.AboutRole)
    qt_action = _add(window, menu, "About &Qt", lambda: QMessageBox.aboutQt(window))
    qt_action.setMenuRole(QAction.MenuRole.AboutQtRole)
    return menu


def _add(window, menu: QMenu, text: str, slot, key: QKeySequence.StandardKey | None = None) -> QAction:
    action = QAction(text, window)
    if key is not None:
        action.setShortcuts(key)
    action.triggered.connect(slot)
    window.addAction(action)
    menu.addAction(action)
    return action
