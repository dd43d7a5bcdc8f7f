"""The speed levers of a stage's denoiser, chosen by the request's settings: each one a wrapper around the
network or the denoiser (as guidance is), none a branch inside the samplers.

- feature reuse (`reuse_interval`, `reuse_stop`, `reuse_start`; the upsampler's own `upsample_reuse_interval`,
  `upsample_reuse_stop`): the whole UNet every N steps, its shallow branch on the cached deep features in
  between, only at noise levels from the stop up to the start (outside them every step runs in full)
  (`glide_studio.diffusion.feature_reuse`);
- guidance interval (`guidance_stop`, `guidance_start`): classifier-free guidance only inside a window of
  noise levels, the conditional half alone (half the rows) outside it; CLIP guidance's gradient likewise (the
  CLIP encoder does not run outside it);
- the upsampler's region (`upsample_context`): an inpainting upsampler runs only on the regenerated pixels'
  bounding box and that much context around it, not the whole edit box (`CroppedNetwork`); every pixel
  outside it is known, so the model's output there is never used.

With `reuse_interval` 1, the window (0, 1) and no region the denoiser is exactly the plain one, bit for bit.
"""

from __future__ import annotations

import torch

from glide_studio.diffusion.feature_reuse import FeatureReuse, ReuseAnchor
from glide_studio.diffusion.gaussian import Denoiser
from glide_studio.diffusion.guidance import cond_fn_in_window, guidance_in_window
from glide_studio.diffusion.state import SamplerState
from glide_studio.models.precision import Precision
from glide_studio.models.unet import ReusedFeatures, upscale_low_res
from glide_studio.pipelines.request import Mode, Request
from glide_studio.pipelines.stages import autocast_for, model_denoiser

SHALLOW_BLOCKS = 1
"""Where feature reuse splits the UNet: the outermost skip connection, so a reuse step runs the stem conv, the
last output block and the output head. Measured (benchmarks/bench_levers.py, eval_levers.py): the deeper
split of 2 blocks costs a third more per reuse step for no oracle gain."""


AUTOMATIC_REUSE = 0
EDITING_REUSE_INTERVAL = 2
"""What `reuse_interval` 0 (automatic, the default) means for the base stage: reuse every 2 steps when the run
edits a picture (inpaint, SDEdit), whose known pixels hold the layout, and not at all when it generates one.
Measured (eval_levers.py, held-out tasks): reuse every 2 steps keeps inpaint and SDEdit at the exact path's
rates, but generation lost 3 objects net of 50 (1 of 32 on tasks 0-11 and 100-111, 2 of 18 on tasks 200-210),
also with reuse only above noise level 0.3 or 0.6 (the same 2 of 18): stale deep features move a whole-canvas
layout, which known pixels hold in an edit; the guidance window alone lost none."""


def reuse_interval_for(request: Request) -> int:
    """The base stage's reuse interval: the request's, or for 0 the automatic one (`EDITING_REUSE_INTERVAL` when
    editing, 1 when generating)."""
    if request.reuse_interval != AUTOMATIC_REUSE:
        return request.reuse_interval
    return 1 if request.mode == Mode.GENERATE else EDITING_REUSE_INTERVAL


def reusing_network(model: torch.nn.Module, precision: Precision | None, shallow_blocks: int = SHALLOW_BLOCKS):
    """The UNet split for feature reuse (`ReusedFeatures`), under the precision: (float32 output, its deep
    features in the network's dtype)."""

    def network(x, timesteps, deep=None, **kwargs):
        features = ReusedFeatures(shallow_blocks, deep)
        with autocast_for(precision):
            output = model(x, timesteps, reuse=features, **kwargs)
        return output.float(), features.deep

    return network


Region = tuple[slice, slice]
"""Rows and columns of the picture a network runs on."""


def network_stride(model: torch.nn.Module) -> int:
    """How many input pixels one pixel of the UNet's deepest level spans: a region the network runs on is a
    multiple of it in size and in position, so its levels keep the whole picture's grid."""
    return 2 ** (len(model.config.resolved_channel_mult) - 1)


def region_to_draw(regenerate: torch.Tensor | None, context: int, stride: int) -> Region | None:
    """The part of the picture an inpainting stage needs the network on: the bounding box of the pixels it
    regenerates ((H, W) or (1, 1, H, W), nonzero = regenerate), grown by `context` pixels on every side and
    snapped outwards to the network's stride; None (the whole picture) when `context` is 0, nothing is known,
    or the region would be the whole picture anyway."""
    if context <= 0 or regenerate is None:
        return None
    where = regenerate.reshape(regenerate.shape[-2:]) > 0
    height, width = where.shape
    rows, cols = torch.nonzero(where.any(dim=1)).flatten(), torch.nonzero(where.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None

    def span(first: int, last: int, size: int) -> slice:
        start = max(0, (first - context) // stride * stride)
        stop = min(size, -(-(last + 1 + context) // stride) * stride)
        return slice(start, stop)

    region = span(int(rows[0]), int(rows[-1]), height), span(int(cols[0]), int(cols[-1]), width)
    if region == (slice(0, height), slice(0, width)):
        return None
    return region


class CroppedNetwork:
    """A UNet run on a region of the picture only: every input of the picture's size is cut to the region (the
    low-resolution picture first upscaled to that size, as the network itself would), and the output outside
    the region is zeros. Only for stages whose pixels outside the region are known: their x0 is the known
    picture whatever the network says there, and the network never sees them."""

    def __init__(self, model: torch.nn.Module, region: Region):
        self.model, self.region, self.config = model, region, model.config

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, **kwargs) -> torch.Tensor:
        size = x.shape[-2:]
        if kwargs.get("low_res") is not None:
            kwargs["low_res"] = upscale_low_res(kwargs["low_res"], size)
        rows, cols = self.region
        cut = {key: value[..., rows, cols] if torch.is_tensor(value) and value.dim() == 4 and value.shape[-2:] == size
               else value for key, value in kwargs.items()}
        inside = self.model(x[..., rows, cols], timesteps, **cut)
        output = inside.new_zeros((*inside.shape[:2], *size))
        output[..., rows, cols] = inside
        return output


class StageDenoiser:
    """A stage's denoiser as the request's levers make it; `carried()` is what a state after the latest step
    keeps for it (the feature reuse's anchor), `build(state, anchor)` continues from such a state."""

    def __init__(self, model: torch.nn.Module, precision: Precision | None, request: Request, *, guided: bool,
                 shallow_blocks: int = SHALLOW_BLOCKS, reuse_interval: int | None = None,
                 reuse_stop: float | None = None, reuse_start: float | None = None, region: Region | None = None):
        self.model = model if region is None else CroppedNetwork(model, region)
        self.precision, self.guided = precision, guided
        self.interval = reuse_interval_for(request) if reuse_interval is None else reuse_interval
        self.reuse_stop = request.reuse_stop if reuse_stop is None else reuse_stop
        self.reuse_start = request.reuse_start if reuse_start is None else reuse_start
        self.scale = request.guidance_scale
        self.window = (request.guidance_stop, request.guidance_start)
        self.num_timesteps = int(getattr(model.config, "diffusion_steps", 1000))
        self.shallow_blocks = shallow_blocks
        self.reuse: FeatureReuse | None = None

    def build(self, device, state: SamplerState | None = None, anchor: ReuseAnchor | None = None) -> Denoiser:
        """The denoiser for a stage starting afresh, or continuing from `state` (and the `anchor` kept with it)."""
        if self.interval > 1:
            first_step = 0 if state is None else state.index
            anchor = None if state is None or anchor is None else anchor.to(device)
            self.reuse = FeatureReuse(reusing_network(self.model, self.precision, self.shallow_blocks),
                                      self.interval, first_step=first_step, anchor=anchor,
                                      lowest_timestep=self.reuse_stop * self.num_timesteps,
                                      highest_timestep=self._highest_timestep())
            denoiser = self.reuse
        else:
            self.reuse = None
            denoiser = model_denoiser(self.model, self.precision)
        if self.guided:
            denoiser = guidance_in_window(denoiser, self.scale, self.window, self.num_timesteps)
        return denoiser

    def _highest_timestep(self) -> float:
        """The highest model timestep feature reuse may run at: all of them at a start of 1."""
        return float("inf") if self.reuse_start >= 1.0 else self.reuse_start * self.num_timesteps

    def guidance_gradient(self, cond_fn):
        """CLIP guidance's cond_fn under the same window of noise levels."""
        return None if cond_fn is None else cond_fn_in_window(cond_fn, self.window, self.num_timesteps)

    def carried(self) -> ReuseAnchor | None:
        return None if self.reuse is None else self.reuse.carried()
