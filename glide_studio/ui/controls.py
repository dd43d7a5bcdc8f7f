"""The controls panel: caption, mode, every run setting (generic controls from the request's fields), the
model picker and the device, plus Run / Cancel."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from glide_studio.app.engine import ModelChoice
from glide_studio.app.run_settings import MODE_LABELS, MODES, RunSettings
from glide_studio.pipelines.request import MAX_SEED, Family, Mode
from glide_studio.ui import icons
from glide_studio.ui.field_controls import FieldControls
from glide_studio.ui.reference_picker import ReferencePicker
from glide_studio.ui.wheel_guard import ComboBox

REFERENCE_STRENGTH = "ip_adapter_scale"

MODE_HINTS = {
    Mode.INPAINT: "Paint a mask over the region to regenerate; the rest stays exactly as it is.",
    Mode.SDEDIT: "Paint rough colour strokes and a mask around them; strength sets how much may change.",
    Mode.GENERATE: "A new picture from the caption alone.",
    Mode.UPSAMPLE: "Re-draw the edit box with the upsampler, guided by the caption (a 64 px picture is upscaled).",
}


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionLabel")
    return label


class ControlsPanel(QWidget):
    run_settings_edited = Signal(object)
    run_requested = Signal()
    cancel_requested = Signal()
    pause_requested = Signal()
    """Pause the run, or resume the paused one."""
    preview_source_changed = Signal(str)

    def __init__(self, settings: RunSettings, models: list[ModelChoice], devices: list[str], parent=None):
        super().__init__(parent)
        self._updating = False
        self._settings = settings
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)

        # The model first: it decides what every setting below means (and which of them count).
        layout.addWidget(_section("Model"))
        model_form = QFormLayout()
        self.model = ComboBox()
        self.upsample = QCheckBox("Upsample to 256 px")
        self.device = ComboBox()
        self.show_noisy = QCheckBox("Preview noisy x_t")
        model_form.addRow("Model", self.model)
        model_form.addRow("", self.upsample)
        model_form.addRow("Device", self.device)
        model_form.addRow("", self.show_noisy)
        layout.addLayout(model_form)
        self.set_models(models)
        self.device.addItems(devices)

        layout.addWidget(_section("Caption"))
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("e.g. a green triangle above a yellow circle")
        self.caption.setClearButtonEnabled(True)
        layout.addWidget(self.caption)

        layout.addWidget(_section("Mode"))
        self.mode = ComboBox()
        for mode in MODES:
            self.mode.addItem(MODE_LABELS[mode], mode.value)
        layout.addWidget(self.mode)
        self.mode_hint = QLabel()
        self.mode_hint.setObjectName("hintLabel")
        self.mode_hint.setWordWrap(True)
        layout.addWidget(self.mode_hint)

        layout.addWidget(_section("Sampling"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(10)
        self.fields = FieldControls()
        self.random_seed = QCheckBox("Random")
        self.dice = QToolButton(text="⚄")
        self.dice.setToolTip("New random seed")
        advanced_form = QFormLayout()
        advanced_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        advanced_form.setHorizontalSpacing(10)
        for name, widget in self.fields.widgets.items():
            if name == REFERENCE_STRENGTH:
                continue  # beside its picture, in the reference picker
            if self.fields.is_advanced(name):
                advanced_form.addRow(self.fields.label(name), widget)
                continue
            if name == "seed":
                seed_row = QHBoxLayout()
                seed_row.addWidget(widget, 1)
                seed_row.addWidget(self.dice)
                seed_row.addWidget(self.random_seed)
                form.addRow(self.fields.label(name), seed_row)
            else:
                form.addRow(self.fields.label(name), widget)
        layout.addLayout(form)
        # What most runs leave alone (the speed levers' fine settings, DDIM's eta) is folded away, as editors
        # fold their advanced options; the choice is remembered with the window's layout.
        self.advanced_toggle = QToolButton(text="Advanced")
        self.advanced_toggle.setObjectName("sectionToggle")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced = QWidget()
        self.advanced.setLayout(advanced_form)
        advanced_form.setContentsMargins(0, 0, 0, 0)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced)

        layout.addWidget(_section("Reference image (Stable Diffusion)"))
        self.reference = ReferencePicker(self.fields.widgets[REFERENCE_STRENGTH])
        layout.addWidget(self.reference)


        layout.addStretch(1)
        # Run, Pause and Cancel live outside the scrolling settings (the window puts run_bar below them), so
        # they are always in reach however long the settings grow.
        self.run_bar = QWidget()
        buttons = QHBoxLayout(self.run_bar)
        buttons.setContentsMargins(10, 6, 10, 10)
        self.run_button = QPushButton(icons.run(), "  Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Run (Ctrl+Enter)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause between two steps, edit, then resume (F8)")
        self.pause_button.setEnabled(False)
        self.cancel_button = QPushButton(icons.stop(), "")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)

        self.set_run_settings(settings)
        self.fields.on_change(self._emit)
        for combo in (self.mode, self.model, self.device, self.reference.adapter):
            combo.currentIndexChanged.connect(self._emit)
        for box in (self.random_seed, self.upsample):
            box.toggled.connect(self._emit)
        self.caption.textChanged.connect(self._emit)
        self.dice.clicked.connect(lambda: self.fields.widgets["seed"].setValue(random.randint(0, MAX_SEED)))
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.show_noisy.toggled.connect(lambda on: self.preview_source_changed.emit("x_t" if on else "pred_x0"))

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def set_models(self, models: list[ModelChoice]) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        for choice in models:
            label = choice.label if choice.available else f"{choice.label} — {choice.detail or 'unavailable'}"
            self.model.addItem(label, choice.family)
            item = self.model.model().item(self.model.count() - 1)
            if not choice.available and choice.family != "demo":
                item.setEnabled(False)
        self.model.blockSignals(False)

    def set_run_settings(self, settings: RunSettings) -> None:
        """Shows the settings without echoing them back as edits."""
        self._settings = settings
        request = settings.request
        self._updating = True
        try:
            if self.caption.text() != request.prompt:
                self.caption.setText(request.prompt)
            self.mode.setCurrentIndex(max(0, self.mode.findData(request.mode.value)))
            self.fields.set_values(request)
            self.reference.show_reference(request.ip_adapter_image)
            self.reference.show_adapter(request.ip_adapter)
            self.random_seed.setChecked(settings.random_seed)
            self.upsample.setChecked(settings.upsample)
            index = self.model.findData(settings.family)
            if index >= 0:
                self.model.setCurrentIndex(index)
            index = self.device.findText(settings.device)
            if index >= 0:
                self.device.setCurrentIndex(index)
        finally:
            self._updating = False
        self._sync_enabled()

    def run_settings(self) -> RunSettings:
        """What the controls show. The model names come from the picker (family, mode, upsampling) unless the
        shown ones already fit it, so a recorded run's own names survive a round trip."""
        request = self._settings.request.with_(prompt=self.caption.text().strip(), mode=Mode(self.mode.currentData()),
                                               ip_adapter=self.reference.adapter.currentData() or
                                               self._settings.request.ip_adapter, **self.fields.values())
        settings = RunSettings(request, self.random_seed.isChecked(), self.device.currentText() or "cpu")
        family = self.model.currentData() or "demo"
        if family != settings.family or self.upsample.isChecked() != settings.upsample \
                or request.mode != self._settings.request.mode:
            settings = settings.with_models(family, upsample=self.upsample.isChecked())
        return settings

    def set_running(self, running: bool, paused: bool = False) -> None:
        self.run_button.setEnabled(not running)
        self.pause_button.setEnabled(running or paused)
        self.pause_button.setText("Resume" if paused and not running else "Pause")
        self.cancel_button.setEnabled(running or paused)

    def _sync_enabled(self) -> None:
        mode = Mode(self.mode.currentData())
        self.fields.sync_enabled(self._settings.request)
        self.fields.widgets["seed"].setEnabled(not self.random_seed.isChecked())
        # A Stable Diffusion model is one network at its own size: no upsampler to switch.
        self.upsample.setEnabled(mode != Mode.UPSAMPLE and self._settings.request.family is Family.GLIDE)
        self.mode_hint.setText(MODE_HINTS[mode])
        self.reference.set_available(self._settings.request.family is Family.SD and mode != Mode.UPSAMPLE)

    def _emit(self, *_args) -> None:
        if self._updating:
            return
        previous = self._settings.request.family
        self._settings = self.run_settings()
        if self._settings.request.family is not previous:  # show the other family's usual values at once
            self._updating = True
            try:
                self.fields.set_values(self._settings.request)
            finally:
                self._updating = False
        self._sync_enabled()
        self.run_settings_edited.emit(self._settings)
