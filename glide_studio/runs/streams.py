"""The one entry to a run's Step stream for every front (the GUI engine, the command line): the request's engine
family picks the pipeline, GLIDE's (`glide_studio.pipelines`) or Stable Diffusion's (`glide_studio.sd`), which
both serve `run(models, request, resume=state) -> Iterator[Step]`."""

from __future__ import annotations

from collections.abc import Iterator

from glide_studio.pipelines.request import Family, Request, Step
from glide_studio.runs.errors import RunError


def run(models, request: Request, *, resume=None) -> Iterator[Step]:
    loaded = getattr(models, "family", Family.GLIDE)
    if loaded is not request.family:
        raise RunError(f"the loaded models are {loaded.value.upper()} models but the request asks for "
                       f"{request.base_model!r}, a {request.family.value.upper()} model: load it first")
    if request.family is Family.SD:
        from glide_studio.sd.pipeline import run as run_sd

        return run_sd(models, request, resume=resume)
    from glide_studio import pipelines

    return pipelines.run(models, request, resume=resume)
