"""One generator per mode: `run(models, request) -> Iterator[Step]`. Tensors only; no Qt, no files.

Every step carries the run's state after it (`Step.state`, a `RunState`); `run(models, request,
resume=state)` continues from one, bit for bit as if the run had never stopped.

Importing this package is cheap: the mode modules (and torch-heavy code) load on first `run`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.request import Mode, Request, Step
from glide_studio.pipelines.state import RunState

if TYPE_CHECKING:
    from glide_studio.pipelines.models import ModelSet

__all__ = ["Mode", "PipelineError", "Request", "RunState", "Step", "run"]


def run(models: ModelSet, request: Request, *, resume: RunState | None = None) -> Iterator[Step]:
    """Dispatch to the request's mode. Drain the iterator to finish; stop asking to cancel.

    With `resume` (a step's `state`), the run continues after that step: the steps already taken are not
    yielded again, and the request's conditioning (prompt, mask, known pixels) is taken from this request, so it
    may differ from the paused run's; a state from another mode, shape, sampler or chain is refused."""
    try:
        mode = Mode(request.mode)
    except ValueError:
        raise PipelineError(f"unknown mode {request.mode!r}") from None
    module = importlib.import_module(f"glide_studio.pipelines.{mode.value}")
    return module.run(models, request, resume=resume)
