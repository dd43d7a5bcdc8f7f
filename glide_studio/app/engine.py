"""The one seam between the app and the models: load them, run a request, list devices and models.

The real engine imports torch and glide_studio.pipelines lazily, inside the worker thread, so the
GUI starts instantly and tests can inject a fake engine with the same methods. Loading goes through
`glide_studio.runs.models.load_model_set`, as it does for the command line.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from glide_studio.app.errors import ModelUnavailableError
from glide_studio.pipelines.request import Family, Mode, Request, Step
from glide_studio.runs.record import RunContext

_log = logging.getLogger("glide_studio.engine")


@dataclass(frozen=True)
class ModelChoice:
    family: str
    label: str
    available: bool
    detail: str = ""


class Engine(Protocol):
    def devices(self) -> list[str]: ...

    def model_choices(self) -> list[ModelChoice]: ...

    def load_models(self, request: Request, device: str) -> None:
        """Make the request's networks ready on the device. Slow: only ever called off the GUI thread."""

    def prepare(self, request: Request, device: str) -> None:
        """load_models, then warm what a first run would otherwise build (tokenizer, kernels), so the user's
        first run starts at full speed. Called off the GUI thread when the window opens."""

    def run(self, request: Request, resume: object | None = None) -> Iterator[Step]:
        """The run's Step stream; `resume` (a paused run's RunState) continues it instead of starting anew."""

    def context(self) -> RunContext:
        """Where and in what precision the latest run ran (and whether compiled): part of every run's record."""

    def set_compile(self, on: bool) -> None:
        """Compile the demo networks in the background and run them compiled once ready (Edit menu)."""

    def score(self, request: Request, images) -> tuple:
        """Each candidate's CandidateScore (how well its region shows the caption), or () when no CLIP that
        belongs with the request's model is on this machine. Called off the GUI thread after a run."""


def torch_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{index}" for index in range(torch.cuda.device_count())] or ["cuda"]
    return found


def _weights_present(names: tuple[str, ...]) -> tuple[bool, str]:
    from glide_studio.checkpoints import registry

    try:
        missing = [name for name in names if not registry.is_downloaded(name)]
    except Exception as error:  # noqa: BLE001 - a status line only; never block the window
        return False, str(error)
    return not missing, "" if not missing else "not downloaded"


def sd_model_choices() -> list[ModelChoice]:
    """The Stable Diffusion models the picker offers (its family key is the model name): the known ones, present
    or not, and the user's own; without the sd extra, one entry that says how to install it."""
    from glide_studio import sd
    from glide_studio.sd import registry

    if not sd.available():
        return [ModelChoice("sd", "Stable Diffusion", False, "install the sd extra: pip install \"glide-studio[sd]\"")]
    from glide_studio.sd.loading import is_present

    choices = []
    for known in registry.KNOWN_MODELS:
        name = f"sd:{known.name}"
        present = is_present(name)
        detail = "" if present else f"not downloaded ({known.size_gb:g} GB: glide-studio sd-download {known.name})"
        choices.append(ModelChoice(name, f"SD · {known.name}", present, detail))
    choices += [ModelChoice(name, f"SD · {label}", True) for name, label in registry.user_models()]
    return choices


class PipelineEngine:
    """Runs glide_studio.pipelines with networks from the checkpoints layer; keeps loaded networks."""

    def __init__(self, base_size: int | None = None, upsample_size: int | None = None,
                 precision: str = "auto", compiler=None) -> None:
        """base_size / upsample_size override the networks' own resolutions (small sizes for tests);
        precision: auto (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16 or fp16;
        compiler: what makes a UNet's compiled twin (torch.compile's CompiledUNet unless given: tests pass
        stand-ins)."""
        self.base_size, self.upsample_size = base_size, upsample_size
        self.precision = precision
        self.compile = False
        """Compile the demo networks in the background (set_compile; the window applies the preference)."""
        self._compiler = compiler
        self._compiled = None
        self._run_models = None
        self._calls_before = 0
        self._networks: dict[tuple[str, str], object] = {}
        self._scoring_networks: dict[tuple[str, str], object] = {}
        self._model_set = None
        self._device = "cpu"
        self._devices: list[str] | None = None

    def devices(self) -> list[str]:
        if self._devices is None:
            self._devices = torch_devices()
        return list(self._devices)

    def model_choices(self) -> list[ModelChoice]:
        demo, demo_detail = _weights_present(("demo-base-inpaint", "demo-upsample-inpaint"))
        glide, glide_detail = _weights_present(("base-inpaint", "upsample-inpaint"))
        return [
            ModelChoice("demo", "Demo (shapes world)", demo, "" if demo else "weights not found"),
            ModelChoice("glide", "GLIDE (filtered)", glide, glide_detail or ""),
            *sd_model_choices(),
        ]

    def load_models(self, request: Request, device: str) -> None:
        from glide_studio.runs.errors import ModelUnavailableError as MissingModel
        from glide_studio.runs.models import load_model_set

        # A full collection during loading holds the GIL for ~0.2 s and freezes the GUI thread; after it,
        # the long-lived objects loading created go to the permanent generation, out of later collections.
        gc.disable()
        try:
            self._model_set = load_model_set(request, device, self.precision, loaded=self._networks,
                                             base_size=self.base_size, upsample_size=self.upsample_size)
        except MissingModel as error:
            raise ModelUnavailableError(f"The model is not available: {error}.") from error
        finally:
            gc.enable()
            gc.freeze()
        self._device = device

    def context(self) -> RunContext:
        if self._model_set is None:
            raise ModelUnavailableError("No model is loaded.")
        from glide_studio.runs.compiling import compiled_calls

        compiled = compiled_calls(self._run_models) > self._calls_before
        return RunContext.here(self._device, self._model_set.precision.name,
                               getattr(self._model_set, "model_hash", ""), compiled=compiled)

    def set_compile(self, on: bool) -> None:
        """Takes effect between runs: turned off, the next run is eager; turned on, compiling starts after the
        next preparation or run (never before a run that is about to start)."""
        self.compile = bool(on)

    def _start_compile(self, request: Request) -> None:
        """Compiles the loaded demo networks in the background, warmed with the runs `request`'s settings make
        (its candidates, one candidate, and a live-painting update); a run never waits for it."""
        from glide_studio.runs.compiling import CompiledModels, compile_allowed, compiling_pays

        if not (self.compile and compile_allowed() and self._model_set is not None
                and compiling_pays(request, self._device)):
            return
        try:
            if self._compiled is None and self._compiler is None:
                from glide_studio.checkpoints.cache import cache_dir

                # inductor's kernels kept on disk: a second start of the editor loads them instead of compiling;
                # the first compile runs in a child process (a thread here would hold the GUI's GIL for long)
                self._compiled = CompiledModels(cache_dir=cache_dir() / "inductor", out_of_process=True)
            elif self._compiled is None:
                self._compiled = CompiledModels(self._compiler)
            from glide_studio.app.live import live_request

            runs = [request] + ([request.with_(batch=1)] if request.batch != 1 else []) + [live_request(request)]
            self._compiled.start(self._model_set, [run.without_unused_inputs() for run in runs])
        except Exception:  # noqa: BLE001 - compiling is a speed-up only: the runs go on eager
            _log.exception("compiling the networks could not start; runs stay eager")

    def prepare(self, request: Request, device: str) -> None:
        from glide_studio import pipelines
        from glide_studio.runs.drain import drain

        self.load_models(request, device)
        if request.family is Family.SD:
            return  # its first step builds nothing a warm-up could save; a 512 px step would only delay the window
        # One base step of an empty-caption generation: builds the tokenizer's tables and the CPU kernels'
        # first-call state (the GIL-holding parts of a cold start), which would otherwise land in the first run.
        warm = Request(mode=Mode.GENERATE, base_model=request.base_model, upsample_model=None, steps=1,
                       sampler=request.sampler, guidance_scale=request.guidance_scale)
        drain(pipelines.run(self._model_set, warm))
        self._start_compile(request)

    def run(self, request: Request, resume: object | None = None) -> Iterator[Step]:
        if self._model_set is None:
            raise ModelUnavailableError("No model is loaded.")
        from glide_studio.runs.compiling import compiled_calls
        from glide_studio.runs.streams import run

        # The compiled twins are swapped in here only, between runs: a run keeps the networks it started with.
        models = self._model_set
        if self.compile and self._compiled is not None:
            models = self._compiled.for_run(models)
        self._run_models, self._calls_before = models, compiled_calls(models)
        return self._then_compile(run(models, request, resume=resume), request)

    def _then_compile(self, steps: Iterator[Step], request: Request) -> Iterator[Step]:
        """The run's steps; once it is over (finished or stopped), compiling starts if it is wanted and not yet
        done for these networks, so it never competes with the run itself."""
        try:
            yield from steps
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
            self._start_compile(request)

    def score(self, request: Request, images) -> tuple:
        from collections import ChainMap

        from glide_studio.runs.models import load_scorer

        # Reuse the CLIP a CLIP-guided run already loaded; what only scoring needs is kept on its own.
        scorer = load_scorer(request, self._device, loaded=ChainMap(self._scoring_networks, self._networks))
        return () if scorer is None else scorer.score(request, images)
