"""The tools column: mask brush, eraser, sketch brush with colour, edit box, brush size, mask actions."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QColorDialog, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from glide_studio.ui import icons
from glide_studio.ui.canvas import MAX_BRUSH, MIN_BRUSH, Canvas, Tool


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(40, 40)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(230, 230, 230))
    painter.setBrush(colour)
    painter.drawRoundedRect(4, 4, 32, 32, 6, 6)
    painter.end()
    return QIcon(pixmap)


class ToolsPanel(QWidget):
    colour_changed = Signal(QColor)

    def __init__(self, canvas: Canvas, parent=None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 8, 6, 8)
        layout.setSpacing(4)
        self.group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        specs = (
            (Tool.MASK, icons.mask_brush(), "Mask brush (B)", "B"),
            (Tool.ERASER, icons.eraser(), "Mask eraser (E)", "E"),
            (Tool.SKETCH, icons.sketch_brush(), "Sketch brush (S)", "S"),
            (Tool.LOCK, icons.lock_brush(), "Lock brush: while paused or scrubbing, keep this part of the "
             "prediction for the rest of the run (L)", "L"),
            (Tool.BOX, icons.edit_box(), "Edit box: what the model sees (M)", "M"),
            (Tool.REGIONS, icons.regions(), "Regions: boxes with phrases that a GLIGEN model draws (G)", "G"),
        )
        for tool, icon, tip, key in specs:
            action = QAction(icon, tip, self, checkable=True, shortcut=key)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _checked=False, chosen=tool: self.choose(chosen))
            self.group.addAction(action)
            self.tool_actions[tool] = action
            layout.addWidget(self._button(action))
        self.tool_actions[canvas.tool].setChecked(True)

        self.colour_button = QToolButton()
        self.colour_button.setIconSize(QSize(28, 28))
        self.colour_button.setToolTip("Sketch colour")
        self.colour_button.setIcon(_swatch(canvas.sketch_colour))
        self.colour_button.clicked.connect(self.pick_colour)
        layout.addWidget(self.colour_button, 0, Qt.AlignmentFlag.AlignHCenter)

        layout.addSpacing(8)
        self.size_label = QLabel()
        self.size_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.size_label.setObjectName("hintLabel")
        self.size_slider = QSlider(Qt.Orientation.Vertical)
        self.size_slider.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size_slider.setToolTip("Brush size ([ and ])")
        self.size_slider.setFixedHeight(110)
        self.size_slider.valueChanged.connect(canvas.set_brush_size)
        canvas.brush_size_changed.connect(self._show_size)
        layout.addWidget(self.size_label)
        layout.addWidget(self.size_slider, 0, Qt.AlignmentFlag.AlignHCenter)
        self._show_size(canvas.brush_size)

        layout.addSpacing(8)
        self.clear_action = QAction(icons.clear_mask(), "Clear mask", self)
        self.clear_action.triggered.connect(canvas.clear_mask)
        self.invert_action = QAction(icons.invert_mask(), "Invert mask", self)
        self.invert_action.triggered.connect(canvas.invert_mask)
        self.fit_action = QAction(icons.fit_view(), "Fit picture (Ctrl+0)", self)
        self.fit_action.triggered.connect(canvas.fit)
        for action in (self.clear_action, self.invert_action, self.fit_action):
            layout.addWidget(self._button(action))
        layout.addStretch(1)

    def _button(self, action: QAction) -> QToolButton:
        button = QToolButton()
        button.setDefaultAction(action)
        button.setIconSize(QSize(26, 26))
        button.setAutoRaise(True)
        return button

    def choose(self, tool: Tool) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    def set_regions_enabled(self, enabled: bool) -> None:
        """The Regions tool works only for a GLIGEN model; chosen while another is picked, the mask brush returns."""
        self.tool_actions[Tool.REGIONS].setEnabled(enabled)
        if not enabled and self.canvas.tool == Tool.REGIONS:
            self.choose(Tool.MASK)

    def pick_colour(self) -> None:
        colour = QColorDialog.getColor(self.canvas.sketch_colour, self, "Sketch colour")
        if colour.isValid():
            self.set_colour(colour)

    def set_colour(self, colour: QColor) -> None:
        self.canvas.set_sketch_colour(colour)
        self.colour_button.setIcon(_swatch(colour))
        self.colour_changed.emit(colour)

    def _show_size(self, size: int) -> None:
        self.size_label.setText(f"{size}px")
        self.size_slider.blockSignals(True)
        self.size_slider.setValue(size)
        self.size_slider.blockSignals(False)
