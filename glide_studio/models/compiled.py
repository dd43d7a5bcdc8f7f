"""torch.compile for the small demo networks, built in the background so that it never delays a run.

Compiling a UNet takes minutes on a small CPU; a run never waits for it. `BackgroundCompile` builds the
compiled twin of a network on a daemon thread (with inductor's on-disk caches pointed at a directory that
outlives the process, so a second start loads the kernels instead of compiling them again) and runs the
warm-up calls that trigger the compilation; only once they have finished does `current()` hand out the compiled
network. Where compiling is not possible (no C++ compiler, an unsupported platform, any error inside the
compiler) the eager network stays in use and `error` says why.

The compiled network's kernels fuse and reorder arithmetic, so its pixels may differ from eager's by rounding:
whoever swaps it in does so between runs and records it with the run. They also run under the GIL (inductor's
default Python wrapper does not release it around its C++ kernels, as eager ATen ops do): measured as GUI stalls
of 110-130 ms while a compiled run goes on (weights/MODEL_CARD.md, "torch.compile").
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from torch import nn

log = logging.getLogger(__name__)

Compiler = Callable[[nn.Module], nn.Module]


def use_compile_cache(directory: Path) -> None:
    """Point inductor's caches (FX graphs, AOT autograd, kernels) at `directory`, kept between sessions. Must run
    before the first compilation of the process, which fixes the cache location."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(directory))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")


def torch_compile(network: nn.Module) -> nn.Module:
    import torch

    return torch.compile(network, dynamic=False)


def _freeze_survivors(phase: str, _info: dict) -> None:
    """A gc callback: after each collection, its survivors leave the collected generations for good (the cyclic
    garbage they later become is not reclaimed: the price of short collections while a compile runs)."""
    if phase == "stop":
        gc.freeze()


class BackgroundCompile:
    """A network's compiled twin, made on a daemon thread by `compiler` and warmed by `warm(compiled)` (the calls
    a run will make, so each shape is compiled before a run needs it)."""

    def __init__(self, network: nn.Module, warm: Callable[[nn.Module], None], *, compiler: Compiler = torch_compile,
                 cache_dir: Path | None = None, nice: int | None = None, before: Callable[[], None] | None = None):
        """nice: the build thread's Linux nice value (None: the process's own). A thread that holds the GIL at a
        low priority stalls every other thread that waits for it (measured: 0.2-0.65 s GUI stalls at nice 19 on a
        busy CPU), so the editor does the long first compile out of process (`before`, which fills the on-disk
        cache) and only the cached build here. before: run first, on the build thread; an error stays eager."""
        self.network, self._warm, self._compiler, self._cache_dir = network, warm, compiler, cache_dir
        self._nice, self._before = nice, before
        self._compiled: nn.Module | None = None
        self.error: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundCompile:
        if self._thread is None:
            self._thread = threading.Thread(target=self._build, name="glide-compile", daemon=True)
            self._thread.start()
        return self

    def _build(self) -> None:
        # Compiling makes millions of Python objects; a collection that walks them holds the GIL for half a second
        # (measured: GUI stalls of 0.4-0.6 s, benchmarks/bench_gui_latency.py --compile during). While the build
        # runs, what survives a collection is frozen, so each collection only walks what came since the last one.
        gc.callbacks.append(_freeze_survivors)
        try:
            # Linux sets nice values per thread (and the compiler processes it starts inherit it).
            if self._nice is not None:
                with contextlib.suppress(AttributeError, OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            if self._cache_dir is not None:
                use_compile_cache(self._cache_dir)
            if self._before is not None:
                self._before()
            compiled = self._compiler(self.network)
            self._warm(compiled)
            self._compiled = compiled
        except Exception as error:  # noqa: BLE001 - any compiler failure means: stay eager
            self.error = f"{type(error).__name__}: {error}"
            log.warning("torch.compile unavailable, the eager network stays in use: %s", self.error)
        finally:
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(_freeze_survivors)
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._compiled is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the build has finished and its thread has ended (benchmarks and tests; never the GUI
        thread)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._done.is_set()

    def current(self) -> nn.Module:
        """The compiled network once it is warm, the eager one until then (or for good, after a failure)."""
        return self._compiled if self._compiled is not None else self.network


def call_signature(args: tuple, kwargs: dict) -> tuple:
    """What a compiled graph is specialised on, for one call: every tensor's shape, strides and dtype (also inside
    dicts and `ReusedFeatures`), the other arguments' values, and the grad and autocast modes. Two calls with the
    same signature run the same graph; a new signature would make torch.compile compile again."""
    import torch

    def of(value):
        if torch.is_tensor(value):
            return ("tensor", tuple(value.shape), value.stride(), value.dtype, value.device.type)
        if isinstance(value, dict):
            return ("dict", tuple((key, of(item)) for key, item in sorted(value.items())))
        if isinstance(value, (tuple, list)):
            return (type(value).__name__, tuple(of(item) for item in value))
        if hasattr(value, "__dataclass_fields__"):
            names = value.__dataclass_fields__
            return (type(value).__name__, tuple((name, of(getattr(value, name))) for name in names))
        return (type(value).__name__, value)

    modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"),
             torch.get_autocast_dtype("cpu"))
    return modes, of(args), of(kwargs)


class CompiledUNet(nn.Module):
    """A GlideUNet whose per-step `forward` is compiled (the whole network, and feature reuse's full and shallow
    calls, each its own graph); the text embedding (once per run) and the config stay the eager network's.

    Compiling happens only while `learning` (the warm-up): once `seal()` is called, a call whose signature was not
    warmed runs the eager network, since compiling it there would stall that run for minutes. A compiled call that
    raises runs eager instead, and the compiled path is dropped for good (logged once)."""

    def __init__(self, unet: nn.Module, compile_fn: Callable | None = None):
        super().__init__()
        import torch

        compile_fn = compile_fn or (lambda fn: torch.compile(fn, dynamic=False))
        self.unet = unet
        self.train(unet.training)
        self._forward = compile_fn(unet.forward)
        self.learning = True
        self.warmed: set[tuple] = set()
        self.compiled_calls = 0
        """How many calls ran compiled kernels: a run's record says it ran compiled when this moved."""
        self.broken: str | None = None

    def seal(self) -> None:
        """Warm-up is over: from now on only the signatures it met run compiled."""
        self.learning = False

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self):
        return self.unet.dtype

    def get_text_emb(self, tokens, mask):
        return self.unet.get_text_emb(tokens, mask)

    def forward(self, *args, **kwargs):
        if self.learning:
            self.warmed.add(call_signature(args, kwargs))
            return self._forward(*args, **kwargs)
        if self.broken is None and call_signature(args, kwargs) in self.warmed:
            try:
                output = self._forward(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the eager network gives this call (and all later) instead
                self.broken = f"{type(error).__name__}: {error}"
                log.warning("a compiled call failed, the eager network runs from now on: %s", self.broken)
            else:
                self.compiled_calls += 1
                return output
        return self.unet(*args, **kwargs)
