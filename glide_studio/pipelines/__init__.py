"""One generator per mode: `run(models, request) -> Iterator[Step]`. Tensors only; no Qt, no files.

Importing this package is cheap: the mode modules (and torch-heavy code) load on first `run`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.request import Mode, Request, Step

if TYPE_CHECKING:
    from glide_studio.pipelines.models import ModelSet

__all__ = ["Mode", "PipelineError", "Request", "Step", "run"]


def run(models: ModelSet, request: Request) -> Iterator[Step]:
    """Dispatch to the request's mode. Drain the iterator to finish; stop asking to cancel."""
    try:
        mode = Mode(request.mode)
    except ValueError:
        raise PipelineError(f"unknown mode {request.mode!r}") from None
    module = importlib.import_module(f"glide_studio.pipelines.{mode.value}")
    return module.run(models, request)
