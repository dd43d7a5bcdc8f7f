"""What the controls panel edits: every generation setting, serialisable, and how it becomes a Request."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from glide_studio.diffusion.samplers import SAMPLERS as SAMPLER_TABLE
from glide_studio.pipelines.request import EditBox, Mode, Request

SAMPLERS = tuple(sorted(SAMPLER_TABLE, key=lambda name: name != Request.sampler))  # the default first
MODES = (Mode.INPAINT, Mode.SDEDIT, Mode.GENERATE, Mode.UPSAMPLE)
MODE_LABELS = {
    Mode.GENERATE: "Generate",
    Mode.INPAINT: "Inpaint",
    Mode.SDEDIT: "Sketch → image",
    Mode.UPSAMPLE: "Upsample",
}
MAX_SEED = 2**31 - 1
_REQUEST_DEFAULTS = Request(mode=Mode.INPAINT)  # one source for the sampling defaults

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


def model_ids(family: str, mode: Mode) -> tuple[str, str]:
    return _MODEL_IDS.get(family, _MODEL_IDS["demo"])[mode]


@dataclass(frozen=True)
class GenerationParams:
    prompt: str = ""
    mode: Mode = Mode.INPAINT
    steps: int = _REQUEST_DEFAULTS.steps
    upsample_steps: int = _REQUEST_DEFAULTS.upsample_steps
    sampler: str = _REQUEST_DEFAULTS.sampler
    guidance_scale: float = _REQUEST_DEFAULTS.guidance_scale
    strength: float = _REQUEST_DEFAULTS.strength
    seed: int = 0
    random_seed: bool = True
    candidates: int = 2
    model: str = "demo"
    device: str = "cpu"
    upsample: bool = True

    def with_(self, **changes) -> GenerationParams:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["mode"] = self.mode.value
        return values

    @classmethod
    def from_dict(cls, values: dict) -> GenerationParams:
        """Tolerant: unknown keys are ignored and bad values fall back to the defaults."""
        defaults = cls()
        known = {}
        for spec in fields(cls):
            if spec.name not in values:
                continue
            default = getattr(defaults, spec.name)
            raw = values[spec.name]
            try:
                if spec.name == "mode":
                    known[spec.name] = Mode(raw)
                elif isinstance(default, bool):
                    known[spec.name] = (
                        raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
                    )
                else:
                    known[spec.name] = type(default)(raw)
            except (TypeError, ValueError):
                continue
        return replace(defaults, **known)


def choose_seed(params: GenerationParams) -> int:
    return random.randint(0, MAX_SEED) if params.random_seed else int(params.seed)


def request_models(params: GenerationParams) -> tuple[str, str | None]:
    """(base model, upsampler or None) that a run of these parameters needs."""
    base_model, upsample_model = model_ids(params.model, params.mode)
    return base_model, upsample_model if (params.upsample or params.mode == Mode.UPSAMPLE) else None


def build_request(
    params: GenerationParams,
    picture: np.ndarray | None,
    mask: np.ndarray | None,
    sketch: np.ndarray | None,
    edit_box: EditBox | None,
    seed: int,
) -> Request:
    base_model, upsample_model = request_models(params)
    mode = params.mode
    return Request(
        mode=mode,
        prompt=params.prompt,
        image=None if mode == Mode.GENERATE else picture,
        mask=mask if mode in (Mode.INPAINT, Mode.SDEDIT) else None,
        sketch=sketch if mode == Mode.SDEDIT else None,
        edit_box=edit_box,
        base_model=base_model,
        upsample_model=upsample_model,
        steps=params.steps,
        upsample_steps=params.upsample_steps,
        sampler=params.sampler,
        guidance_scale=params.guidance_scale,
        strength=params.strength,
        seed=seed,
        batch=params.candidates,
    )


def params_from_request_fields(fields_: dict) -> dict:
    """GenerationParams values from a recorded request's fields (PNG metadata of any GLIDE Studio tool)."""
    values = {
        key: fields_[key]
        for key in (
            "prompt",
            "mode",
            "steps",
            "upsample_steps",
            "sampler",
            "guidance_scale",
            "strength",
            "seed",
        )
        if key in fields_
    }
    if "batch" in fields_:
        values["candidates"] = fields_["batch"]
    values["random_seed"] = False
    base = str(fields_.get("base_model") or "")
    if base:
        values["model"] = "demo" if base.startswith("demo") else "glide"
    if "upsample_model" in fields_:
        values["upsample"] = bool(fields_["upsample_model"])
    return values
