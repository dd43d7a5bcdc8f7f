"""Draining a run's Step stream: the one loop the worker, the command line and the evaluation share."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from glide_studio.pipelines.request import Step
from glide_studio.runs.errors import RunError


def drain(steps: Iterable[Step], on_step: Callable[[Step], bool | None] | None = None) -> np.ndarray:
    """Runs the stream to its end and returns the final N x H x W x 3 uint8 results.

    `on_step` sees every step; returning True stops the run there (cancel), and then None is returned.
    The stream is closed in every case, so the pipeline lets go of its memory before the caller goes on."""
    final = None
    try:
        for step in steps:
            if on_step is not None and on_step(step):
                return None
            if step.final is not None:
                final = np.ascontiguousarray(step.final, dtype=np.uint8)
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()
    if final is None:
        raise RunError("the pipeline ended without producing an image")
    return final
