"""The controls panel: caption, mode and every sampling setting, plus Run / Cancel."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from glide_studio.app.engine import ModelChoice
from glide_studio.app.params import MAX_SEED, MODE_LABELS, MODES, SAMPLERS, GenerationParams
from glide_studio.pipelines.request import Mode
from glide_studio.ui import icons

MODE_HINTS = {
    Mode.INPAINT: "Paint a mask over the region to regenerate; the rest stays exactly as it is.",
    Mode.SDEDIT: "Paint rough colour strokes and a mask around them; strength sets how much may change.",
    Mode.GENERATE: "A new picture from the caption alone.",
    Mode.UPSAMPLE: "Upscale the edit box 4x, guided by the caption.",
}


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionLabel")
    return label


class ControlsPanel(QWidget):
    params_edited = Signal(object)
    run_requested = Signal()
    cancel_requested = Signal()
    preview_source_changed = Signal(str)

    def __init__(self, params: GenerationParams, models: list[ModelChoice], devices: list[str], parent=None):
        super().__init__(parent)
        self._updating = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)

        layout.addWidget(_section("Caption"))
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("e.g. a green triangle above a yellow circle")
        self.caption.setClearButtonEnabled(True)
        layout.addWidget(self.caption)

        layout.addWidget(_section("Mode"))
        self.mode = QComboBox()
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
        self.steps = QSpinBox(minimum=1, maximum=1000)
        self.sampler = QComboBox()
        self.sampler.addItems(list(SAMPLERS))
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=30.0, singleStep=0.5, decimals=1)
        self.strength = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2)
        self.candidates = QSpinBox(minimum=1, maximum=8)
        self.upsample = QCheckBox("Upsample to 256 px")
        form.addRow("Steps", self.steps)
        form.addRow("Sampler", self.sampler)
        form.addRow("Guidance", self.guidance)
        form.addRow("Strength", self.strength)
        form.addRow("Candidates", self.candidates)
        form.addRow("", self.upsample)

        seed_row = QHBoxLayout()
        self.seed = QSpinBox(minimum=0, maximum=MAX_SEED)
        self.random_seed = QCheckBox("Random")
        self.dice = QToolButton(text="⚄")
        self.dice.setToolTip("New random seed")
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.random_seed)
        form.addRow("Seed", seed_row)
        layout.addLayout(form)

        layout.addWidget(_section("Model"))
        model_form = QFormLayout()
        self.model = QComboBox()
        self.device = QComboBox()
        self.show_noisy = QCheckBox("Preview noisy x_t")
        model_form.addRow("Model", self.model)
        model_form.addRow("Device", self.device)
        model_form.addRow("", self.show_noisy)
        layout.addLayout(model_form)
        self.set_models(models)
        self.device.addItems(devices)

        layout.addStretch(1)
        buttons = QHBoxLayout()
        self.run_button = QPushButton(icons.run(), "  Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Run (Ctrl+Enter)")
        self.cancel_button = QPushButton(icons.stop(), "")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)

        self.set_params(params)
        for widget in (self.steps, self.seed, self.candidates):
            widget.valueChanged.connect(self._emit)
        for widget in (self.guidance, self.strength):
            widget.valueChanged.connect(self._emit)
        for combo in (self.mode, self.sampler, self.model, self.device):
            combo.currentIndexChanged.connect(self._emit)
        for box in (self.random_seed, self.upsample):
            box.toggled.connect(self._emit)
        self.caption.textChanged.connect(self._emit)
        self.dice.clicked.connect(lambda: self.seed.setValue(random.randint(0, MAX_SEED)))
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.show_noisy.toggled.connect(lambda on: self.preview_source_changed.emit("x_t" if on else "pred_x0"))

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

    def set_params(self, params: GenerationParams) -> None:
        """Shows params without echoing them back as edits."""
        self._updating = True
        try:
            if self.caption.text() != params.prompt:
                self.caption.setText(params.prompt)
            self.mode.setCurrentIndex(max(0, self.mode.findData(params.mode.value)))
            self.steps.setValue(params.steps)
            if self.sampler.findText(params.sampler) < 0:
                self.sampler.addItem(params.sampler)
            self.sampler.setCurrentText(params.sampler)
            self.guidance.setValue(params.guidance_scale)
            self.strength.setValue(params.strength)
            self.candidates.setValue(params.candidates)
            self.seed.setValue(params.seed)
            self.random_seed.setChecked(params.random_seed)
            self.upsample.setChecked(params.upsample)
            index = self.model.findData(params.model)
            if index >= 0:
                self.model.setCurrentIndex(index)
            index = self.device.findText(params.device)
            if index >= 0:
                self.device.setCurrentIndex(index)
        finally:
            self._updating = False
        self._sync_enabled()

    def params(self) -> GenerationParams:
        return GenerationParams(
            prompt=self.caption.text().strip(),
            mode=Mode(self.mode.currentData()),
            steps=self.steps.value(),
            sampler=self.sampler.currentText(),
            guidance_scale=self.guidance.value(),
            strength=self.strength.value(),
            seed=self.seed.value(),
            random_seed=self.random_seed.isChecked(),
            candidates=self.candidates.value(),
            model=self.model.currentData() or "demo",
            device=self.device.currentText() or "cpu",
            upsample=self.upsample.isChecked(),
        )

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _sync_enabled(self) -> None:
        mode = Mode(self.mode.currentData())
        self.strength.setEnabled(mode == Mode.SDEDIT)
        self.seed.setEnabled(not self.random_seed.isChecked())
        self.upsample.setEnabled(mode != Mode.UPSAMPLE)
        self.mode_hint.setText(MODE_HINTS[mode])

    def _emit(self, *_args) -> None:
        self._sync_enabled()
        if not self._updating:
            self.params_edited.emit(self.params())
