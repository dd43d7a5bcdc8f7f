"""The two objects every pipeline speaks: a frozen request in, a stream of steps out.

Every field of `Request` is defined once, here, with what the layers above need to show and check it
(its label and help text, its command-line flag, its A1111 key, its range, when it matters). The record
codec (`glide_studio.runs.record`), the CLI, the PNG metadata and the GUI controls all map fields
generically from this metadata; a new field needs no edit elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

import numpy as np
import torch

from glide_studio.diffusion.samplers import Sampler
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.state import RunState


class Mode(str, Enum):
    GENERATE = "generate"
    INPAINT = "inpaint"
    SDEDIT = "sdedit"
    UPSAMPLE = "upsample"

    def __str__(self) -> str:
        return self.value


class Guidance(str, Enum):
    """Classifier-free guidance, the noised-CLIP gradient, or both at once (each scaled by `guidance_scale`)."""

    CFG = "cfg"
    CLIP = "clip"
    BOTH = "both"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {"cfg": "Classifier-free", "clip": "CLIP (noised CLIP)", "both": "Both (classifier-free + CLIP)"}[
            self.value]

    @property
    def classifier_free(self) -> bool:
        return self is not Guidance.CLIP

    @property
    def uses_clip(self) -> bool:
        """Whether the run needs the noised CLIP encoders."""
        return self is not Guidance.CFG


class Family(str, Enum):
    """Which engine family a model belongs to: GLIDE (pixel space, our networks) or Stable Diffusion (latent space,
    diffusers components, the optional `sd` extra)."""

    GLIDE = "glide"
    SD = "sd"

    def __str__(self) -> str:
        return self.value


SD_MODEL_PREFIX = "sd:"
"""A model name of the Stable Diffusion family: "sd:" + a known name, a Hub repository id, a diffusers folder or a
single-file .safetensors checkpoint."""


def family_of(model: str | None) -> Family:
    return Family.SD if isinstance(model, str) and model.startswith(SD_MODEL_PREFIX) else Family.GLIDE


class Scheduler(str, Enum):
    """The Stable Diffusion family's samplers, by the names A1111 and InvokeAI users know (diffusers' schedulers)."""

    DPMPP_2M_KARRAS = "DPM++ 2M Karras"
    EULER_A = "Euler a"
    DDIM = "DDIM"

    def __str__(self) -> str:
        return self.value


def _glide(request: Request) -> bool:
    return request.family is Family.GLIDE


def _sd(request: Request) -> bool:
    return request.family is Family.SD


def _edits_a_region(request: Request) -> bool:
    return _glide(request) and request.mode in (Mode.INPAINT, Mode.SDEDIT)


def _uses_eta(request: Request) -> bool:
    return request.scheduler == Scheduler.DDIM if _sd(request) else request.sampler == Sampler.DDIM


@dataclass(frozen=True)
class EditBox:
    """The square-able region of the picture the model sees, in picture pixels (x, y, width, height)."""

    x: int
    y: int
    width: int
    height: int


class RequestError(PipelineError):
    """A request field holds a value no run can use."""


MAX_REGIONS = 30
"""GLIGEN's position net reads at most this many boxes."""


@dataclass(frozen=True)
class Region:
    """A GLIGEN grounding box in picture pixels (x0, y0 inclusive; x1, y1 exclusive) and the phrase of what it
    shows."""

    x0: int
    y0: int
    x1: int
    y1: int
    phrase: str

    def __post_init__(self) -> None:
        corners = (self.x0, self.y0, self.x1, self.y1)
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in corners):
            raise RequestError(f"a region's corners must be whole numbers of pixels, got {corners}")
        if not 0 <= self.x0 < self.x1 or not 0 <= self.y0 < self.y1:
            raise RequestError(f"a region needs 0 <= x0 < x1 and 0 <= y0 < y1, got {corners}")
        if not isinstance(self.phrase, str) or not self.phrase.strip():
            raise RequestError(f"the region {corners} needs a phrase saying what it shows")
        if any(character in self.phrase for character in "\r\n"):
            raise RequestError(f"the region {corners}'s phrase must be one line")


def _grounded(request: Request) -> bool:
    return _sd(request) and bool(request.regions)


def _has_reference(request: Request) -> bool:
    return _sd(request) and request.ip_adapter_image is not None


def setting(default: Any, *, label: str, help: str, cli: str | None = None, a1111: str | None = None,
            minimum: float | None = None, maximum: float | None = None, step: float | None = None,
            relevant: Callable[[Request], bool] | None = None, control: bool = True,
            family_defaults: Mapping[Family, Any] | None = None, advanced: bool = False,
            unrecorded: Any = dataclasses.MISSING) -> Any:
    """A request field with what the layers above need to show it.

    cli: the flag's name (default: the field's, dashed; "" for none); a1111: its key in A1111's parameters
    text (None: not written there); minimum/maximum: the accepted range, checked by every run; step: the GUI
    control's increment; relevant: when the field changes the result (otherwise the GUI greys it out and the
    A1111 text leaves it out); control: whether the GUI shows a generic control for it; family_defaults: the
    usual value for a model family where it is not `default`'s (see Request.with_family_defaults); advanced: a
    setting most runs leave alone (its control sits in the panel's folded Advanced section); unrecorded: for a
    field added after records of runs were first written, how those runs went (their records lack the field;
    read back, they must not take a later default).
    """
    metadata = {
        "label": label, "help": help, "cli": cli, "a1111": a1111, "minimum": minimum, "maximum": maximum,
        "step": step, "relevant": relevant, "control": control, "family_defaults": dict(family_defaults or {}),
        "advanced": advanced,
    }
    if unrecorded is not dataclasses.MISSING:
        metadata["unrecorded"] = unrecorded
    return field(default=default, metadata=metadata)


def pixels(help: str, used: tuple[str, ...], required: tuple[str, ...],
           relevant: Callable[[Request], bool] | None = None) -> Any:
    """A picture array that the `used` modes read and the `required` modes cannot run without: recorded by its
    digest, never inside the record. relevant: which runs read it at all (others leave it out, as unused modes do)."""
    return field(default=None, compare=False, repr=False,
                 metadata={"pixels": True, "help": help, "modes": used, "required": required, "relevant": relevant})


MAX_STEPS = 1000
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Request:
    """Everything that determines a result. Same request + same device + same precision -> same pixels.

    Images are uint8 HxWx3 numpy arrays (RGB) of any size; masks are HxW uint8/bool arrays where
    nonzero means "regenerate this pixel" (the user's painted region); the sketch is an HxWx4 RGBA
    uint8 layer whose alpha marks painted strokes.
    """

    prompt: str = setting("", label="Caption", help="the caption", a1111=None, control=False)
    image: np.ndarray | None = pixels("the picture to edit (any size)", ("generate", "inpaint", "sdedit", "upsample"),
                                      ("inpaint", "sdedit", "upsample"))
    mask: np.ndarray | None = pixels("mask image: white or opaque = regenerate", ("inpaint", "sdedit"), ("inpaint",))
    sketch: np.ndarray | None = pixels("RGBA sketch layer (SDEdit): alpha marks strokes", ("sdedit",), ("sdedit",))
    steps: int = setting(25, label="Steps", help="base model steps", a1111="Steps", minimum=1, maximum=MAX_STEPS)
    sampler: Sampler = setting(
        Sampler.DPMPP_2M_SDE, label="Sampler", a1111="Sampler", relevant=_glide,
        help="the stochastic DPM-Solver++(2M) by default: SDEdit is defined by a stochastic reverse process")
    eta: float = setting(0.0, label="Eta", help="DDIM stochasticity (sampler ddim only)", a1111="Eta",
                         minimum=0.0, maximum=1.0, step=0.1, relevant=_uses_eta, advanced=True)
    guidance_scale: float = setting(3.0, label="Guidance scale", a1111="CFG scale", minimum=0.0, maximum=100.0,
                                    step=0.5, family_defaults={Family.SD: 7.5},
                                    help="guidance strength (3 is GLIDE's usual, 7.5 Stable Diffusion's)")
    guidance: Guidance = setting(Guidance.CFG, label="Guidance", a1111="Guidance", relevant=_glide,
                                 help="classifier-free (cfg), noised-CLIP (clip) guidance, or both (the CLIP "
                                      "gradient on the classifier-free prediction)")
    seed: int = setting(0, label="Seed", help="random seed", a1111="Seed", minimum=0, maximum=MAX_SEED)
    strength: float = setting(
        0.75, label="Strength", help="SDEdit noise strength in (0, 1]: 1 is plain inpainting",
        a1111="Denoising strength", minimum=0.01, maximum=1.0, step=0.05,
        relevant=lambda request: request.mode == Mode.SDEDIT)
    batch: int = setting(1, label="Candidates", help="how many results to draw", cli="candidates",
                         a1111="Batch size", minimum=1, maximum=64)
    base_model: str = setting("demo-base-inpaint", label="Model", help="base model name", cli="model",
                              a1111="Model", control=False)
    upsample_model: str | None = setting(
        "demo-upsample-inpaint", label="Upsampler", help="upsampler model name, or 'none' to stop at 64 px",
        a1111="Hires upscaler", control=False, relevant=_glide)
    upsample_steps: int = setting(
        5, label="Upsample steps", help="upsampler steps (below its strength)", a1111="Hires steps", minimum=1,
        maximum=MAX_STEPS,
        relevant=lambda request: _glide(request) and request.upsample_model is not None)
    # -- speed levers (glide_studio.pipelines.levers); the exact path: reuse 1, guidance window 0..1, upsampler
    #    context 0 and strength 1 ---------------------------------------------------------------------------------
    reuse_interval: int = setting(
        0, label="Feature reuse", a1111="Feature reuse", minimum=0, maximum=10, relevant=_glide,
        help="run the whole network every N steps and only its shallow branch on its cached deep features in "
             "between (DeepCache); 1 runs it in full at every step; 0 (automatic): every 2 steps when editing a "
             "picture (inpaint, SDEdit), every step when generating one (reuse moves a generation's objects)",
        advanced=True, unrecorded=1)
    reuse_stop: float = setting(
        0.0, label="Feature reuse until", a1111="Feature reuse until", minimum=0.0, maximum=1.0, step=0.05,
        relevant=lambda request: _glide(request) and request.reuse_interval != 1,
        help="feature reuse stops below this noise level (0..1): the steps below it run the whole network",
        advanced=True, unrecorded=0.0)
    reuse_start: float = setting(
        1.0, label="Feature reuse from", a1111="Feature reuse from", minimum=0.0, maximum=1.0, step=0.05,
        relevant=lambda request: _glide(request) and request.reuse_interval != 1,
        help="feature reuse starts at this noise level (0..1): the steps above it run the whole network. 1 reuses "
             "at every level (the default, the fastest); 0.3 when the mask cuts through an object: stale deep "
             "features at the middle levels can lay out a fill that does not continue it",
        advanced=True, unrecorded=1.0)
    upsample_reuse_interval: int = setting(
        1, label="Upsampler feature reuse", a1111="Hires feature reuse", minimum=1, maximum=10,
        relevant=lambda request: _glide(request) and request.upsample_model is not None,
        help="feature reuse in the upsampler (1: off, the default: fewer steps keep the fill better; reuse at "
             "every level triples its seam error, every 3 steps above noise level 0.5 keeps it)",
        advanced=True, unrecorded=1)
    upsample_reuse_stop: float = setting(
        0.0, label="Upsampler feature reuse until", a1111="Hires feature reuse until", minimum=0.0, maximum=1.0,
        step=0.05, relevant=lambda request: _glide(request) and request.upsample_model is not None
        and request.upsample_reuse_interval > 1,
        help="the upsampler's feature reuse stops below this noise level (0..1)", advanced=True, unrecorded=0.0)
    upsample_context: int = setting(
        32, label="Upsampler context", a1111="Hires context", minimum=0, maximum=1024, step=8,
        relevant=lambda request: _glide(request) and request.upsample_model is not None
        and request.mode in (Mode.INPAINT, Mode.SDEDIT),
        help="when inpainting, the upsampler draws only the mask's bounding box and this many of its pixels of "
             "context around it, not the whole edit box (the rest is known); 0 draws the whole box",
        advanced=True, unrecorded=0)
    upsample_strength: float = setting(
        0.4, label="Upsampler strength", a1111="Hires strength", minimum=0.05, maximum=1.0, step=0.05,
        relevant=lambda request: _glide(request) and request.upsample_model is not None,
        help="the upsampler starts from the low-resolution picture, upscaled, noised to this level, rather than "
             "from pure noise (1), and spends its steps below it", advanced=True, unrecorded=1.0)
    guidance_stop: float = setting(
        0.3, label="Guidance until", a1111="Guidance until", minimum=0.0, maximum=1.0, step=0.05,
        relevant=_glide,
        help="guidance stops below this noise level (0..1): classifier-free guidance's steps below it run the "
             "conditional half alone, at half the cost (CLIP guidance's skip the CLIP model); 0 guides every step",
        advanced=True, unrecorded=0.0)
    guidance_start: float = setting(
        1.0, label="Guidance from", a1111="Guidance from", minimum=0.0, maximum=1.0, step=0.05,
        relevant=_glide,
        help="guidance starts at this noise level (0..1; 1 guides from the first step)",
        advanced=True, unrecorded=1.0)
    edit_box: EditBox | None = setting(
        None, label="Edit box", help="edit box x,y,width,height in picture pixels (what the model sees)",
        cli="box", a1111="Edit box", control=False)
    mask_grow: int = setting(
        0, label="Grow mask", a1111="Mask grow", minimum=-64, maximum=256, relevant=_edits_a_region,
        help="grow the painted region by this many picture pixels before the run (negative: shrink it); pixels "
             "it reaches are regenerated too")
    mask_feather: int = setting(
        0, label="Feather", a1111="Mask feather", minimum=0, maximum=256, relevant=_edits_a_region,
        help="how deep inside the mask the result fades in, in picture pixels (never less than two of the "
             "model's pixels); pixels outside the mask are never touched")
    mode: Mode = setting(Mode.INPAINT, label="Mode", help="what the run does", cli="", a1111="Mode",
                         control=False)
    # -- the Stable Diffusion family's section: read only when base_model is an "sd:" model ----------------------
    negative_prompt: str = setting(
        "", label="Negative prompt", help="what the picture should not show (Stable Diffusion models)",
        relevant=_sd)
    scheduler: Scheduler = setting(Scheduler.DPMPP_2M_KARRAS, label="Scheduler", a1111="Sampler", relevant=_sd,
                                   help="the Stable Diffusion sampler (diffusers' scheduler of that name)")
    # -- GLIGEN (a Stable Diffusion model with gated self-attention): boxes with phrases -------------------------
    regions: tuple[Region, ...] = setting(
        (), label="Regions", cli="region", a1111="Regions", control=False, relevant=_grounded,
        help="a box in picture pixels and what it shows, x0,y0,x1,y1=phrase; repeat it for more boxes (GLIGEN "
             "models)")
    grounding_share: float = setting(
        0.3, label="Grounding share", a1111="GLIGEN beta", minimum=0.0, maximum=1.0, step=0.05, relevant=_grounded,
        help="the share of the steps, from the first, that follow the boxes (GLIGEN's scheduled sampling beta); "
             "the later steps refine the picture without them")
    # -- IP-Adapter image prompt (Stable Diffusion): a reference picture whose look the run follows ----------------
    ip_adapter_image: np.ndarray | None = pixels(
        "reference picture whose look a Stable Diffusion run follows (IP-Adapter image prompt)",
        ("generate", "inpaint", "sdedit"), (), relevant=_sd)
    ip_adapter_scale: float = setting(
        0.6, label="Reference strength", a1111="IP-Adapter scale", minimum=0.0, maximum=2.0, step=0.05,
        relevant=_has_reference,
        help="how strongly the run follows the reference picture's look (0: not at all, exactly as without it)")
    ip_adapter: str = setting(
        "ip-adapter-sd15", label="IP-Adapter", a1111="IP-Adapter", control=False, relevant=_has_reference,
        help="the adapter that reads the reference: a known name (ip-adapter-sd15) or an adapter .safetensors file "
             "with its image_encoder/ folder beside it")

    def __post_init__(self) -> None:
        for name, kind in (("mode", Mode), ("sampler", Sampler), ("guidance", Guidance), ("scheduler", Scheduler)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    known = ", ".join(member.value for member in kind)
                    what = "sampler" if kind in (Sampler, Scheduler) else name
                    raise RequestError(f"unknown {what} {value!r}; expected one of {known}") from None
        if not isinstance(self.regions, tuple):  # a list from the command line's repeated flag
            object.__setattr__(self, "regions", tuple(self.regions))

    @property
    def family(self) -> Family:
        return family_of(self.base_model)

    def with_(self, **changes) -> Request:
        return replace(self, **changes)

    def with_family_defaults(self, previous: Family | None = None, keep: Collection[str] = ()) -> Request:
        """Each field whose usual value depends on the model family (the CFG scale: GLIDE's 3, SD's 7.5) set to
        this request's family's, except where the user chose it: the fields named in `keep`, and, coming from
        a request of the `previous` family, a value changed from that family's usual one."""
        changes = {}
        for spec in fields(self):
            usual = spec.metadata.get("family_defaults")
            if not usual or spec.name in keep:
                continue
            if previous is not None and getattr(self, spec.name) != usual.get(previous, spec.default):
                continue
            changes[spec.name] = usual.get(self.family, spec.default)
        return replace(self, **changes) if changes else self

    def candidate_seed(self, candidate: int) -> int:
        """The seed that candidate `candidate` of this run draws all its noise from (A1111's seed + i, wrapping
        within the seed range), so that any candidate can be run again by itself."""
        return (self.seed + candidate) % (MAX_SEED + 1)

    def alone(self, candidate: int) -> Request:
        """Candidate `candidate` of this run as a run of its own: one candidate, drawn from its own seed."""
        return replace(self, seed=self.candidate_seed(candidate), batch=1)

    def without_unused_inputs(self) -> Request:
        """The request with the pictures its mode does not read left out (so they are not recorded either)."""
        unused = {spec.name: None for spec in fields(self) if spec.metadata.get("pixels") and (
                  self.mode.value not in spec.metadata["modes"]
                  or (spec.metadata["relevant"] is not None and not spec.metadata["relevant"](self)))}
        return replace(self, **unused) if unused else self

    def check(self) -> None:
        """Every field's type and range, as its metadata states them."""
        if not isinstance(self.prompt, str):
            raise RequestError("the prompt must be text")
        if len(self.regions) > MAX_REGIONS or not all(isinstance(region, Region) for region in self.regions):
            raise RequestError(f"regions must be at most {MAX_REGIONS} boxes with phrases")
        for spec in fields(self):
            low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
            if low is None and high is None:
                continue
            value = getattr(self, spec.name)
            whole = isinstance(spec.default, int)
            number = isinstance(value, int) if whole else isinstance(value, (int, float))
            if not number or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
                kind = "a whole number" if whole else "a finite number"
                span = " to ".join(str(int(end)) if float(end).is_integer() else f"{end:g}" for end in (low, high))
                raise RequestError(f"{spec.name} must be {kind} from {span}, got {value!r}")


@dataclass(frozen=True)
class Step:
    """One denoising step. Tensors are (N, 3, H, W) in [-1, 1], on whatever device ran the model."""

    index: int
    total: int
    stage: str
    x_t: torch.Tensor
    pred_x0: torch.Tensor
    final: np.ndarray | None = None
    """Set on the last step of the whole run: N x H x W x 3 uint8 results at the picture's size."""
    stage_index: int = 0
    """The step's position within its stage (0-based)."""
    stage_total: int = 0
    """How many steps its stage has."""
    state: RunState | None = None
    """The whole run's state after this step: `run(models, request, resume=state)` continues from here."""
