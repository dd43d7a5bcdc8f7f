"""The machinery every mode shares: image <-> tensor conversion, per-stage conditioning, and the driver
that runs stages one after another, numbers their steps across the whole run, hands out the run's state
after every step and resumes from one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from glide_studio.diffusion import (
    NoiseSource,
    SamplerState,
    SamplerStep,
    clip_guidance,
    clip_text_embedding,
    paste_known_pixels,
)
from glide_studio.diffusion.feature_reuse import ReuseAnchor
from glide_studio.models.precision import Precision
from glide_studio.models.tokenizers import clip_tokenize_prompts, tokenize_prompts
from glide_studio.pipelines.errors import PipelineError
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Request, Step
from glide_studio.pipelines.state import RunState

NO_CLIP_MESSAGE = "CLIP guidance needs the noised CLIP image and text encoders, which are not loaded"


# -- conversions -------------------------------------------------------------------------------------

def image_to_tensor(image: np.ndarray, device) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[None]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=torch.float32)
    return tensor.permute(0, 3, 1, 2) / 127.5 - 1


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, rounded as GLIDE's notebooks do."""
    scaled = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def mask_to_tensor(mask: np.ndarray, device) -> torch.Tensor:
    """(H, W) bool/uint8 (nonzero = regenerate) -> (1, 1, H, W) float32 of 1 = regenerate."""
    return torch.from_numpy(np.asarray(mask) != 0).to(device=device, dtype=torch.float32)[None, None]


def keep_known_pixels(generated: np.ndarray, known: np.ndarray, regenerate: np.ndarray) -> np.ndarray:
    """Copy the known pixels back bit for bit: generated (N,H,W,3), known (H,W,3), regenerate (H,W)."""
    return np.where(np.asarray(regenerate, dtype=bool)[None, :, :, None], generated, known[None])


# -- per-stage conditioning -------------------------------------------------------------------------

def text_kwargs(model: torch.nn.Module, prompt: str, batch: int, device, guided: bool,
                precision: Precision | None = None) -> dict:
    """The text embedding, computed once per stage (the transformer never runs per step): B prompt rows,
    then B empty-prompt rows when guided (CFG)."""
    prompts = [prompt] * batch + ([""] * batch if guided else [])
    tokens, mask = tokenize_prompts(prompts, model.config.text_ctx)
    with torch.no_grad(), autocast_for(precision):
        return {"text_emb": model.get_text_emb(tokens.to(device), mask.to(device))}


def inpaint_kwargs(model: torch.nn.Module, known_image: torch.Tensor | None,
                   regenerate: torch.Tensor | None, rows: int) -> dict:
    """GLIDE's inpaint conditioning (inpaint_mask 1 = KNOWN); an all-unknown mask when nothing is known."""
    if not model.config.inpaint:
        return {}
    if known_image is None or regenerate is None:
        return {}  # the network uses zeros: nothing known
    known = 1 - regenerate
    return {"inpaint_image": (known_image * known).expand(rows, -1, -1, -1),
            "inpaint_mask": known.expand(rows, -1, -1, -1)}


def paste_fn(known_image: torch.Tensor | None, regenerate: torch.Tensor | None):
    if known_image is None or regenerate is None:
        return None
    known = 1 - regenerate
    return paste_known_pixels(known_image * known, known)


def doubled(kwargs: dict) -> dict:
    """Repeat every per-row tensor for the unconditional half of a CFG batch."""
    return {key: torch.cat([value, value], dim=0) if torch.is_tensor(value) else value
            for key, value in kwargs.items()}


def clip_cond_fn(models: ModelSet, prompt: str, batch: int, scale: float):
    if not models.has_clip:
        raise PipelineError(NO_CLIP_MESSAGE)
    tokens, lengths = clip_tokenize_prompts([prompt] * batch)
    device = models.device
    text_embedding = clip_text_embedding(models.clip_text, tokens.to(device), lengths.to(device))
    image_encoder = models.clip_image
    size = models.clip_image_size

    def encode(image_0_255: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if image_0_255.shape[-1] != size or image_0_255.shape[-2] != size:
            image_0_255 = F.interpolate(image_0_255, (size, size), mode="bilinear", align_corners=False)
        return image_encoder(image_0_255, timesteps)

    return clip_guidance(encode, text_embedding, scale, logit_scale=models.clip_logit_scale)


def autocast_for(precision: Precision | None):
    return contextlib.nullcontext() if precision is None else precision.autocast()


def model_denoiser(model: torch.nn.Module, precision: Precision | None = None):
    """The network under the chosen precision; its output always float32, so guidance and the sampler's
    arithmetic stay in full precision whatever the network ran in."""

    def denoise(x, timesteps, **kwargs):
        with autocast_for(precision):
            output = model(x, timesteps, **kwargs)
        return output.float()

    return denoise


# -- stages and the driver --------------------------------------------------------------------------

@dataclass
class StagePlan:
    """One sampling stage; `start` runs it given the previous stage's uint8 result (None for the first) and,
    to resume, the sampler state to continue from (else None); `finish` turns its final sample into this
    stage's uint8 result (N, H, W, 3). `shape`, `sampler` and `chain` (`diffusion.chain_key`) say which
    states it can continue."""

    name: str
    num_steps: int
    start: Callable[[np.ndarray | None, SamplerState | None, ReuseAnchor | None], Iterator[SamplerStep]]
    finish: Callable[[torch.Tensor], np.ndarray]
    shape: tuple[int, ...]
    sampler: str
    chain: str
    start_image: np.ndarray | None = None
    """What a first stage starts from when it is not noise (SDEdit's picture with its strokes, uint8 at the
    stage's size): kept in the run's states, so that a resumed run can see which pixels were painted since."""
    carried: Callable[[], ReuseAnchor | None] = lambda: None
    """What the stage's denoiser keeps after its latest step (feature reuse's anchor, see `levers`); `start`
    takes it back, with the sampler state, to continue."""
    levels: tuple[float, ...] = ()
    """The noise level (as a strength) of x before each respaced index of the stage's chain (`Chain.levels`)."""

    def level_of(self, state: SamplerState | None) -> float | None:
        if not self.levels or state is None:
            return None
        return 0.0 if state.done else self.levels[state.t]


def drive(stages: list[StagePlan], final: Callable[[np.ndarray], np.ndarray], *, mode: str,
          resume: RunState | None = None) -> Iterator[Step]:
    """Yield every step of every stage (from `resume` on, if given), numbered across the run; each carries
    the run's state after it and the last one `final`. A state this run cannot continue is refused now."""
    if resume is not None:
        check_resume(stages, mode, resume)
    return _steps(stages, final, str(mode), resume)


def _steps(stages: list[StagePlan], final, mode: str, resume: RunState | None) -> Iterator[Step]:
    total = sum(stage.num_steps for stage in stages)
    first = 0 if resume is None else resume.stage_number
    previous = None if resume is None else resume.previous
    offset = sum(stage.num_steps for stage in stages[:first])
    for number in range(first, len(stages)):
        stage, is_last = stages[number], number == len(stages) - 1
        state = resume.sampler if resume is not None and number == first else None
        if state is not None and state.done:  # paused after the stage's last step: the next stage starts
            previous = stage.finish(state.x)
            offset += stage.num_steps
            continue
        stage_input = previous if previous is not None else stage.start_image
        anchor = resume.reuse_anchor if state is not None else None
        steps = stage.start(previous, state, anchor)
        try:
            for step in steps:
                result = None
                if step.index == stage.num_steps - 1:
                    previous = stage.finish(step.sample)
                    if is_last:
                        result = final(previous)
                run_state = RunState(mode, stage.name, number, step.state, stage_input, stage.carried(),
                                     stage.level_of(step.state))
                yield Step(offset + step.index, total, stage.name, step.sample, step.pred_xstart, result,
                           stage_index=step.index, stage_total=stage.num_steps, state=run_state)
        finally:
            steps.close()
        offset += stage.num_steps


def check_resume(stages: list[StagePlan], mode: str, resume: RunState) -> None:
    """A state continues only the run it came from: same mode, stage, shape, sampler and chain."""
    if resume.mode != str(mode):
        raise PipelineError(f"the state is from a run in mode {resume.mode}; this request's mode is {mode}")
    names = ", ".join(stage.name for stage in stages)
    number = resume.stage_number
    if not 0 <= number < len(stages) or stages[number].name != resume.stage:
        raise PipelineError(f"the state is from stage {number + 1} ({resume.stage}) of its run; "
                            f"this run's stages are {names}")
    stage, sampler = stages[number], resume.sampler
    if tuple(sampler.x.shape) != tuple(stage.shape):
        raise PipelineError(f"the state's {resume.stage} sample has shape {tuple(sampler.x.shape)}; this run's is "
                            f"{tuple(stage.shape)} (another batch or size)")
    if sampler.sampler != str(stage.sampler):
        raise PipelineError(f"the state was sampled with {sampler.sampler}; this request asks for {stage.sampler}")
    if sampler.chain != stage.chain:
        raise PipelineError(f"the state belongs to another {resume.stage} chain (its steps, strength or schedule "
                            "differ from this request's)")
    if number > 0 and resume.previous is None:
        raise PipelineError(f"the state has no result of the stage before {resume.stage}")
    if sampler.noise is None or sampler.noise.kind != "generator":
        raise PipelineError("the state does not say where the run's noise generator stood")


def check_request(request: Request) -> None:
    """Settings every mode shares (each field's range, from its metadata); each mode checks its own inputs."""
    request.check()


def noise_for(request: Request, resume: RunState | None = None) -> NoiseSource:
    """All randomness of a run comes from CPU generators, one per candidate seeded with its own seed (candidate i of
    a batch draws the noise `request.alone(i)` draws), or, resuming, those generators as the state left them (the
    seed no longer matters then)."""
    if resume is not None and resume.sampler.noise is not None and resume.sampler.noise.kind == "generator":
        return NoiseSource.from_state(resume.sampler.noise)
    return NoiseSource.per_row(torch.Generator(device="cpu").manual_seed(request.candidate_seed(candidate))
                               for candidate in range(request.batch))
