"""What the controls panel edits: a request without pictures (every setting of a run, mapped generically)
and the two choices that are not part of a run: whether each run draws a new seed, and the device."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from glide_studio.pipelines.editbox import with_default_box
from glide_studio.pipelines.request import MAX_SEED, EditBox, Family, Mode, Request
from glide_studio.pipelines.request import family_of as request_family_of
from glide_studio.runs.codec import decode, encode

MODES = (Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE, Mode.UPSAMPLE)
MODE_LABELS = {
    Mode.GENERATE: "Generate",
    Mode.INPAINT: "Inpaint",
    Mode.SDEDIT: "Sketch → image",
    Mode.UPSAMPLE: "Upsample",
}

# (base model, upsample model) per family and mode. Inpaint-style modes need the inpaint networks.
_MODEL_IDS = {
    # The demo ships inpainting networks only; they generate too (with everything masked).
    "demo": {mode: ("demo-base-inpaint", "demo-upsample-inpaint") for mode in Mode},
    "glide": {
        Mode.GENERATE: ("base", "upsample"),
        Mode.INPAINT: ("base-inpaint", "upsample-inpaint"),
        Mode.SDEDIT: ("base-inpaint", "upsample-inpaint"),
        Mode.UPSAMPLE: ("base", "upsample"),
    },
}
MODEL_FAMILIES = tuple(_MODEL_IDS)


def family_of(base_model: str) -> str:
    """The model picker's family for a recorded base model name (a name it does not know is GLIDE's); a Stable
    Diffusion model is an entry of its own, keyed by its name."""
    if request_family_of(base_model) is Family.SD:
        return base_model
    for family, ids in _MODEL_IDS.items():
        if any(base_model in pair for pair in ids.values()):
            return family
    return "demo" if base_model.startswith("demo") else "glide"


@dataclass(frozen=True)
class RunSettings:
    request: Request = Request(batch=2)
    """Every setting of the next run; its picture fields stay empty (the document supplies them)."""
    random_seed: bool = True
    device: str = "cpu"
    clear_layers_on_accept: bool = False
    """Keep the mask and sketch after accepting a candidate (so the same area can be re-rolled), unless set."""

    @property
    def family(self) -> str:
        return family_of(self.request.base_model)

    @property
    def upsample(self) -> bool:
        return self.request.upsample_model is not None

    def with_request(self, **changes: Any) -> RunSettings:
        return replace(self, request=self.request.with_(**changes))

    def with_models(self, family: str | None = None, mode: Mode | None = None,
                    upsample: bool | None = None) -> RunSettings:
        """The picker's choice (family, mode, upsampling on or off) turned into the networks a run needs; moving
        to a model of the other family takes that family's usual values where the user kept this one's (the CFG
        scale: GLIDE's 3, SD's 7.5)."""
        mode = Mode(mode or self.request.mode)
        if request_family_of(family or self.family) is Family.SD:  # one network, no upsampler
            chosen = self.with_request(mode=mode, base_model=family or self.family, upsample_model=None)
        else:
            ids = _MODEL_IDS.get(family or self.family, _MODEL_IDS["demo"])[mode]
            wanted = self.upsample if upsample is None else upsample
            chosen = self.with_request(mode=mode, base_model=ids[0],
                                       upsample_model=ids[1] if (wanted or mode == Mode.UPSAMPLE) else None)
        if chosen.request.family is self.request.family:
            return chosen
        return replace(chosen, request=chosen.request.with_family_defaults(self.request.family))

    def to_json(self) -> dict:
        return encode(self)

    @classmethod
    def from_json(cls, data: Any) -> RunSettings:
        """Tolerant: unknown keys are ignored and bad values fall back to the defaults; settings saved before
        the run record (one flat object) are read too."""
        if not isinstance(data, dict):
            return cls()
        if "request" not in data:
            return _from_flat(data)
        return decode(cls, data, lenient=True)


def _from_flat(values: dict) -> RunSettings:
    """Settings of versions before the run record: request fields side by side with the model family and an
    upsample switch."""
    values = dict(values)
    family, upsample = values.pop("model", "demo"), values.pop("upsample", True)
    settings = decode(RunSettings, {"random_seed": values.pop("random_seed", True),
                                    "device": values.pop("device", "cpu")}, lenient=True)
    request = decode(Request, values, lenient=True)
    if "candidates" not in values:
        request = request.with_(batch=RunSettings().request.batch)
    return replace(settings, request=request).with_models(str(family), upsample=bool(upsample))


def choose_seed(settings: RunSettings) -> int:
    return random.randint(0, MAX_SEED) if settings.random_seed else settings.request.seed


def run_request(settings: RunSettings, picture: np.ndarray, mask: np.ndarray | None, sketch: np.ndarray | None,
                edit_box: EditBox | None, seed: int) -> Request:
    """The request a run of these settings on the document makes: the pictures its mode reads, the user's
    edit box or else the default one (the same rule as the command line's)."""
    request = settings.request.with_(image=picture, mask=mask, sketch=sketch, edit_box=edit_box, seed=seed)
    return with_default_box(request.without_unused_inputs())
