"""torch.compile for the demo networks of a loaded ModelSet: compiled in the background, swapped in between runs.

`CompiledModels` builds the compiled twins of a model set's UNets on one daemon thread
(`glide_studio.models.compiled.BackgroundCompile`; the editor's first compile runs in a child process at the lowest
priority, which fills inductor's on-disk cache) and warms them by draining the runs the editor will make (so every
call signature a run meets is compiled before a run meets it); `for_run` hands a run the twin of each UNet that
was made from that very network, once warm, else the eager one. Only the demo networks on the CPU are compiled,
the only place it was measured (weights/MODEL_CARD.md, "torch.compile": it did not clearly pay there, so the
editor's preference is off by default); the full-size networks' first compile was never measured.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from glide_studio import checkpoints
from glide_studio.models.compiled import BackgroundCompile, CompiledUNet
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Family, Mode, Request
from glide_studio.runs.codec import decode, encode
from glide_studio.runs.drain import drain

COMPILE_ENV = "GLIDE_STUDIO_COMPILE"
"""Set to 0 to never compile, whatever the preference says (the test suite does: a real compile takes minutes)."""

STAGES = ("base", "upsample")


def compile_allowed() -> bool:
    return os.environ.get(COMPILE_ENV, "").strip().lower() not in ("0", "off", "no", "false")


def compiling_pays(request: Request, device: str) -> bool:
    """The request's networks are the small demo ones on the CPU (the only place compiling was measured)."""
    if request.family is not Family.GLIDE or str(device) != "cpu":
        return False
    names = [name for name in (request.base_model, request.upsample_model) if name]
    try:
        return bool(names) and all(checkpoints.get_spec(name).source == "demo" for name in names)
    except checkpoints.CheckpointError:
        return False


def warm_up_run(request: Request, size: int = 256) -> Request:
    """`request` on a stand-in picture: the same models, steps, levers and candidates, so the same network calls
    (shapes, feature-reuse branches, guidance rows) as the user's runs of these settings. Sketch to image and
    upsampling make an inpaint's calls (a known picture and mask), a generation its own (nothing known)."""
    if request.mode is Mode.GENERATE:
        return request.with_(image=None, mask=None, sketch=None, edit_box=None, seed=0)
    picture = np.full((size, size, 3), 127, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    return request.with_(mode=Mode.INPAINT, image=picture, mask=mask, sketch=None, edit_box=None, seed=0)


def compiled_calls(models: ModelSet | None) -> int:
    """How many network calls of `models` have run compiled kernels so far (0 for an eager model set)."""
    if models is None:
        return 0
    return sum(getattr(getattr(models, stage, None), "compiled_calls", 0) for stage in STAGES)


class CompiledModels:
    """The compiled twins of one loaded model set's UNets, once warm. `compiler` makes one twin from a UNet (a
    CompiledUNet by default; tests pass stand-ins, since a real compile takes minutes)."""

    def __init__(self, compiler: Callable[[nn.Module], nn.Module] = CompiledUNet, cache_dir: Path | None = None,
                 nice: int | None = None, out_of_process: bool = False):
        """out_of_process: first compile the same networks and runs in a child process at the lowest priority
        (`compile_in_child`), which fills the on-disk cache, then build the twins here from it: the compile's Python
        work then never holds this process's GIL at a low priority (the editor; a benchmark timing the compile
        itself does it in process)."""
        self.compiler, self.cache_dir, self.nice, self.out_of_process = compiler, cache_dir, nice, out_of_process
        self.build: BackgroundCompile | None = None
        self._networks: tuple = ()

    def start(self, models: ModelSet, warm_runs: Sequence[Request]) -> bool:
        """Starts compiling `models`' UNets in the background, unless that is already done or under way for these
        networks, or another build is still running (it is let finish; the next call starts this one). True when a
        build was started."""
        networks = tuple(getattr(models, stage) for stage in STAGES)
        if self.build is not None and (self._covers(networks) or not self.build.wait(0)):
            return False
        unets = nn.ModuleDict({stage: network for stage, network in zip(STAGES, networks, strict=True)
                               if network is not None})

        def twins(eager: nn.ModuleDict) -> nn.ModuleDict:
            return nn.ModuleDict({stage: self.compiler(network) for stage, network in eager.items()})

        def warm(compiled: nn.ModuleDict) -> None:
            ready = dataclasses.replace(models, **dict(compiled.items()))
            for request in warm_runs:
                drain(_pipeline_run(ready, warm_up_run(request)))
            for twin in compiled.values():
                seal = getattr(twin, "seal", None)
                if seal is not None:
                    seal()

        before = None
        if self.out_of_process and self.cache_dir is not None:
            precision = models.precision.name if models.precision is not None else "fp32"
            before = functools.partial(compile_in_child, warm_runs, str(models.device), precision, self.cache_dir,
                                       models.base_size, models.upsample_size)
        self._networks = networks
        self.build = BackgroundCompile(unets, warm, compiler=twins, cache_dir=self.cache_dir, nice=self.nice,
                                       before=before).start()
        return True

    def _covers(self, networks: tuple) -> bool:
        """Every network of `networks` is one this build compiles (a base-only run's set drops the upsampler)."""
        return any(network is not None for network in networks) and all(
            network is None or network is built for network, built in zip(networks, self._networks, strict=True))

    def for_run(self, models: ModelSet) -> ModelSet:
        """`models` with the compiled twin of each of its UNets that this build made from that very network, once
        warm; else `models` itself (still compiling, compiling failed, or other networks are loaded now)."""
        build = self.build
        if build is None or not build.ready or not isinstance(models, ModelSet):
            return models  # still compiling, or it failed (logged once, by the build)
        twins = build.current()
        swapped = {stage: twins[stage] for stage, built in zip(STAGES, self._networks, strict=True)
                   if stage in twins and getattr(models, stage) is built}
        return dataclasses.replace(models, **swapped) if swapped else models

    @property
    def error(self) -> str | None:
        return None if self.build is None else self.build.error


CHILD_NICE = 19
"""The child compile's priority: the lowest, so that the user's runs keep the cores (it shares no GIL with them)."""


def compile_in_child(warm_runs: Sequence[Request], device: str, precision: str, cache_dir: Path,
                     base_size: int | None = None, upsample_size: int | None = None) -> None:
    """Compiles the runs' networks in a child process at the lowest priority, filling inductor's cache in
    `cache_dir`; blocks (without the GIL) until it has ended, and raises when it failed."""
    spec = {"runs": [encode(request) for request in warm_runs], "device": device, "precision": precision,
            "cache": str(cache_dir), "base_size": base_size, "upsample_size": upsample_size}
    done = _done_marker(spec)
    if done.is_file():  # a child compiled these very runs before: the cache has them, build here at once
        return
    child = subprocess.Popen([sys.executable, "-m", "glide_studio.runs.compiling"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_child_setup)
    atexit.register(_stop, child)  # the editor closing stops it: no compile goes on behind a closed window
    try:
        _, errors = child.communicate(json.dumps(spec))
    finally:
        atexit.unregister(_stop)
    if child.returncode != 0:
        raise RuntimeError(f"the compile process failed ({child.returncode}): {errors.strip()[-500:]}")
    done.touch()


def _done_marker(spec: dict) -> Path:
    """The file that says a child compiled `spec`'s runs into its cache, for these versions of torch and of us."""
    import hashlib

    import torch

    from glide_studio import __version__

    key = json.dumps([spec, torch.__version__, __version__], sort_keys=True)
    return Path(spec["cache"]) / f"compiled-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _child_setup() -> None:
    """In the child before it runs: the lowest priority, and (Linux) killed when the thread that started it ends,
    so that an editor that is killed takes its compile with it."""
    os.nice(CHILD_NICE)
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()


def _child(spec: dict) -> int:
    from glide_studio.runs.models import load_model_set

    runs = [decode(Request, run) for run in spec["runs"]]
    models = load_model_set(runs[0], spec["device"], spec["precision"], base_size=spec.get("base_size"),
                            upsample_size=spec.get("upsample_size"))
    compiled = CompiledModels(cache_dir=Path(spec["cache"]))
    compiled.start(models, runs)
    compiled.build.wait()
    if compiled.error:
        print(compiled.error, file=sys.stderr)
        return 1
    return 0


def _pipeline_run(models: ModelSet, request: Request):
    from glide_studio import pipelines

    return pipelines.run(models, request)


if __name__ == "__main__":
    raise SystemExit(_child(json.loads(sys.stdin.read())))
