"""One control per run setting, built from the Request field's own metadata (label, help, range, step, when
it matters): a new field that asks for a control gets one here without an edit."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any

from PySide6.QtWidgets import QComboBox, QLineEdit, QWidget

from glide_studio.pipelines.request import Request
from glide_studio.runs.codec import FieldSpec, specs
from glide_studio.ui.wheel_guard import ComboBox, DoubleSpinBox, SpinBox


def _decimals(step: float | None) -> int:
    return 2 if not step else max(1, -math.floor(math.log10(step)) + 1)


def _widget(found: FieldSpec) -> QWidget:
    kind, meta = found.kind, found.metadata
    if isinstance(kind, type) and issubclass(kind, Enum):
        combo = ComboBox()
        for member in kind:
            combo.addItem(getattr(member, "label", str(member.value)), member)
        return combo
    if kind is int:
        spin = SpinBox()
        spin.setRange(int(meta.get("minimum", 0)), int(meta.get("maximum", 2**31 - 1)))
        return spin
    if kind is float:
        spin = DoubleSpinBox()
        spin.setDecimals(_decimals(meta.get("step")))
        spin.setRange(float(meta.get("minimum", -1e9)), float(meta.get("maximum", 1e9)))
        spin.setSingleStep(float(meta.get("step") or 0.1))
        return spin
    return QLineEdit()


class FieldControls:
    """The controls of every Request field whose metadata asks for one, by field name."""

    def __init__(self) -> None:
        self.specs = [found for found in specs(Request) if not found.is_pixels and found.metadata.get("control")]
        self.widgets: dict[str, QWidget] = {}
        for found in self.specs:
            widget = _widget(found)
            widget.setToolTip(found.metadata["help"])
            self.widgets[found.name] = widget

    def label(self, name: str) -> str:
        return next(found.metadata["label"] for found in self.specs if found.name == name)

    def is_advanced(self, name: str) -> bool:
        return next(bool(found.metadata.get("advanced")) for found in self.specs if found.name == name)

    def set_values(self, request: Request) -> None:
        for found in self.specs:
            widget, value = self.widgets[found.name], getattr(request, found.name)
            if isinstance(widget, QComboBox):
                widget.setCurrentIndex(max(0, widget.findData(value)))
            elif isinstance(widget, QLineEdit):
                widget.setText(str(value))
            else:
                widget.setValue(value)

    def values(self) -> dict[str, Any]:
        found_values = {}
        for found in self.specs:
            widget = self.widgets[found.name]
            if isinstance(widget, QComboBox):
                found_values[found.name] = widget.currentData()
            elif isinstance(widget, QLineEdit):
                found_values[found.name] = widget.text()
            else:
                found_values[found.name] = widget.value()
        return found_values

    def on_change(self, callback: Callable[..., None]) -> None:
        for widget in self.widgets.values():
            if isinstance(widget, QComboBox):
                widget.currentIndexChanged.connect(callback)
            elif isinstance(widget, QLineEdit):
                widget.textChanged.connect(callback)
            else:
                widget.valueChanged.connect(callback)

    def sync_enabled(self, request: Request) -> None:
        """Grey out what does not change this request's result (strength outside sketch to image, ...)."""
        for found in self.specs:
            self.widgets[found.name].setEnabled(found.relevant(request))
