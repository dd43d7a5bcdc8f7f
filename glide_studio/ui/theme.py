"""A dark, quiet look in the spirit of Krita and InvokeAI: Fusion style, dark palette, a blue accent."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#1e1e21"
PANEL = "#26262a"
RAISED = "#303036"
BORDER = "#3a3a42"
TEXT = "#dedee2"
MUTED = "#8c8c96"
ACCENT = "#5aa0ff"

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {BACKGROUND}; }}
QWidget {{ color: {TEXT}; font-size: 10pt; }}
QDockWidget {{ titlebar-close-icon: none; }}
QDockWidget::title {{
    background: {PANEL}; padding: 6px 8px; border-bottom: 1px solid {BORDER};
    text-transform: uppercase; font-weight: 600; color: {MUTED};
}}
QDockWidget > QWidget {{ background: {PANEL}; }}
QToolBar {{ background: {PANEL}; border: none; spacing: 4px; padding: 6px; }}
QToolButton {{ background: transparent; border: 1px solid transparent; border-radius: 6px; padding: 5px; }}
QToolButton:hover {{ background: {RAISED}; border-color: {BORDER}; }}
QToolButton:checked {{ background: #2c4466; border-color: {ACCENT}; }}
QPushButton {{
    background: {RAISED}; border: 1px solid {BORDER}; border-radius: 6px; padding: 6px 12px;
}}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: {MUTED}; background: {PANEL}; }}
QPushButton#runButton {{
    background: {ACCENT}; color: #0b1220; border: none; font-weight: 700; font-size: 11pt; padding: 9px;
}}
QPushButton#runButton:hover {{ background: #7ab4ff; }}
QPushButton#runButton:disabled {{ background: #33415a; color: #7f8aa0; }}
QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {BACKGROUND}; border: 1px solid {BORDER}; border-radius: 5px; padding: 4px 6px;
    selection-background-color: {ACCENT};
}}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{
    border-color: {ACCENT};
}}
QSpinBox:disabled, QDoubleSpinBox:disabled, QComboBox:disabled, QLineEdit:disabled {{
    color: {MUTED}; background: {PANEL};
}}
QComboBox QAbstractItemView {{ background: {RAISED}; selection-background-color: #2c4466; }}
QLabel#sectionLabel {{ color: {MUTED}; font-size: 8pt; font-weight: 600; text-transform: uppercase; }}
QLabel#hintLabel {{ color: {MUTED}; font-size: 8pt; }}
QProgressBar {{
    background: {BACKGROUND}; border: 1px solid {BORDER}; border-radius: 5px; text-align: center;
    min-height: 16px; max-height: 16px;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QListWidget, QTreeWidget {{ background: {BACKGROUND}; border: 1px solid {BORDER}; border-radius: 6px; }}
QListWidget::item:selected, QTreeWidget::item:selected {{ background: #2c4466; color: {TEXT}; }}
QListWidget::item {{ border-radius: 4px; padding: 2px; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; border-top: 1px solid {BORDER}; }}
QMenuBar {{ background: {PANEL}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: #2c4466; }}
QMenu {{ background: {RAISED}; border: 1px solid {BORDER}; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QCheckBox::indicator {{
    width: 13px; height: 13px; border: 1px solid #55555f; border-radius: 3px; background: {BACKGROUND};
}}
QCheckBox::indicator:checked {{ background: {ACCENT}; border-color: {ACCENT}; }}
QCheckBox::indicator:disabled {{ background: {PANEL}; border-color: {BORDER}; }}
QAbstractSpinBox::up-button, QAbstractSpinBox::down-button {{ width: 0; border: none; }}
QSplitter::handle {{ background: {BORDER}; }}
QMainWindow::separator {{ background: {BORDER}; width: 1px; height: 1px; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: PANEL,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND,
        QPalette.ColorRole.AlternateBase: RAISED,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: RAISED,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#0b1220",
        QPalette.ColorRole.ToolTipBase: RAISED,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(MUTED))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(MUTED))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
