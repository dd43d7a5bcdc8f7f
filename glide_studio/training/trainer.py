"""A small, resumable trainer for GLIDE-architecture UNets.

Objective as GLIDE (improved DDPM): eps MSE plus the variational-bound term that trains the learned
variance. Two optional changes of emphasis, not of optimum: a share of the timesteps drawn from the noisiest
part of the chain, and the eps MSE weighted by clip(1/SNR, 1, cap). Both serve the text pathway: a caption
decides colour and shape only where the noisy image no longer shows them (SNR below ~0.05 on this world), where
plain eps MSE weighs an x0 error by SNR and so hardly teaches the caption at all. Any positive weighting has
the same minimiser, the conditional mean, so sampling is unchanged.

Batches come from a ``make_batch(rng, batch_size)`` callable, so the same loop fine-tunes on any data.
Checkpoints are plain tensor dicts (``weights_only`` loadable) written atomically; a run resumes from
its last checkpoint and draws the same batches it would have drawn uninterrupted.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion.gaussian import Diffusion
from ..diffusion.losses import training_losses
from ..models import build_model
from ..progress import ProgressBar

Batch = dict[str, torch.Tensor]
MakeBatch = Callable[[np.random.Generator, int], Batch]


@dataclass
class TrainSettings:
    name: str
    options: dict[str, Any]
    out_dir: str
    steps: int = 10000
    batch_size: int = 16
    learning_rate: float = 3e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    seed: int = 0
    bf16: bool = True
    grad_clip: float = 1.0
    high_noise_share: float = 0.0  # this share of each batch draws t from [high_noise_from, T)
    high_noise_from: int = 700
    snr_weight_cap: float = 1.0  # 1: plain eps MSE; >1: weight clip(1/SNR, 1, cap)
    text_encoder_lr_scale: float = 1.0  # learning-rate factor of the text transformer and its embeddings


TEXT_ENCODER_PREFIXES = ("token_embedding.", "positional_embedding", "padding_embedding", "transformer.", "final_ln.")


def split_text_encoder_parameters(model: torch.nn.Module) -> tuple[list, list]:
    """(text transformer with its embeddings, everything else: the UNet and the layers that read the text)."""
    encoder, rest = [], []
    for name, parameter in model.named_parameters():
        (encoder if name.startswith(TEXT_ENCODER_PREFIXES) else rest).append(parameter)
    return encoder, rest


@torch.no_grad()
def reset_text_pathway(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Fresh weights for the text transformer, its embeddings, transformer_proj and every attention block's
    encoder_kv; the UNet keeps what it learned. Token and padding tables start at unit scale and positions
    small, so a token's identity dominates its slot in the residual stream from the first step."""
    model.token_embedding.weight.normal_(0.0, 1.0, generator=generator)
    model.positional_embedding.normal_(0.0, 0.1, generator=generator)
    if getattr(model, "padding_embedding", None) is not None:
        model.padding_embedding.normal_(0.0, 1.0, generator=generator)
    # Modules' reset_parameters draw from the global generator: seed a forked one, leave the caller's alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        for name, module in model.named_modules():
            if name.startswith(("transformer", "final_ln")) or name.endswith("encoder_kv"):
                if hasattr(module, "reset_parameters") and not isinstance(module, torch.nn.Embedding):
                    module.reset_parameters()


def save_checkpoint(obj: Any, path: Path) -> None:
    """torch.save beside `path`, then renamed over it: a run killed mid-save keeps its last checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA's decay at a step: short early, so the average does not keep the random start for thousands of
    steps."""
    return min(decay, (1 + step) / (10 + step))


class TrainingLoop:
    """The loop every trainer here shares: train_step until the settings' steps, a log line per step, an atomic
    checkpoint every ``checkpoint_every`` steps and at the end. Subclasses give ``settings``, ``step``,
    ``out_dir``, ``train_step()`` (a record with "loss"), ``save()`` and ``progress_name``."""

    progress_name = "train"

    def run(self, max_steps: int | None = None, progress: bool = True) -> list[dict[str, float]]:
        """Train until settings.steps (or max_steps more), checkpointing as it goes; the records of the steps."""
        target = self.settings.steps if max_steps is None else min(self.settings.steps, self.step + max_steps)
        history = []
        if self.step >= target:
            return history  # nothing to train: leave the checkpoint and its recorded settings as they are
        log = (self.out_dir / "log.jsonl").open("a")
        bar = ProgressBar(total=target, initial=self.step, disable=not progress, desc=self.progress_name)
        try:
            while self.step < target:
                started = time.perf_counter()
                record = self.train_step()
                record.update(step=self.step, seconds=time.perf_counter() - started)
                history.append(record)
                log.write(json.dumps(record) + "\n")
                bar.update(1)
                bar.set_postfix(**{k: f"{record[k]:.4f}" for k in ("loss", "mse") if k in record})
                if self.step % self.settings.checkpoint_every == 0:
                    log.flush()
                    self.save()
        finally:
            bar.close()
            log.close()
        self.save()
        return history


class Trainer(TrainingLoop):
    def __init__(self, settings: TrainSettings, make_batch: MakeBatch):
        self.settings = settings
        self.progress_name = settings.name
        self.make_batch = make_batch
        self.out_dir = Path(settings.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model = build_model(settings.options).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        encoder, rest = split_text_encoder_parameters(self.model)
        self.optimizer = torch.optim.AdamW(
            [{"params": rest, "lr_scale": 1.0}, {"params": encoder, "lr_scale": settings.text_encoder_lr_scale}],
            lr=settings.learning_rate, weight_decay=0.0)
        self.diffusion = Diffusion(settings.options.get("noise_schedule", "squaredcos_cap_v2"))
        self.step = 0
        self.run_start_step = 0  # warm-up counts from here (a warm start begins at its weights' step)
        self._resume()

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "state.pt"

    def _resume(self) -> None:
        if not self.checkpoint_path.is_file():
            return
        state = torch.load(self.checkpoint_path, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        if "optimizer" in state:  # absent after a deliberate change of parameter shapes
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.run_start_step = int(state.get("run_start_step", 0))

    def warm_start(self, weights: dict[str, torch.Tensor], step: int) -> None:
        """Begin a new run from trained weights (model and EMA), e.g. to fine-tune the shipped demo model."""
        if self.checkpoint_path.is_file():
            raise FileExistsError(f"{self.out_dir} already holds a run; resume it or pick a new directory")
        weights = {k: v.float() for k, v in weights.items()}
        self.model.load_state_dict(weights)
        self.ema.load_state_dict(weights)
        self.step = self.run_start_step = step

    def save(self) -> None:
        save_checkpoint(
            {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
             "optimizer": self.optimizer.state_dict(), "step": self.step,
             "run_start_step": self.run_start_step},
            self.checkpoint_path,
        )
        (self.out_dir / "settings.json").write_text(json.dumps(asdict(self.settings), indent=1))

    def _denoiser(self, x, model_t, **kwargs):
        return self.model(x, model_t, **kwargs)

    def train_step(self) -> dict[str, float]:
        s = self.settings
        # Seeding per step (not per run) keeps a resumed run on the very batches it would have seen.
        rng = np.random.default_rng([s.seed, self.step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        batch = self.make_batch(rng, s.batch_size)
        x0 = batch.pop("x0")
        t = self._sample_timesteps(x0.shape[0], gen)
        noise = torch.randn(x0.shape, generator=gen)
        warm = self.step - self.run_start_step + 1
        for group in self.optimizer.param_groups:
            group["lr"] = s.learning_rate * group["lr_scale"] * min(1.0, warm / max(1, s.warmup_steps))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16):
            losses = training_losses(self._denoiser, self.diffusion, x0, t, noise, batch)
        loss = (losses["mse"].float() * self.mse_weights(t) + losses["vb"].float()).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        return {"loss": loss.item(), "mse": losses["mse"].float().mean().item(),
                "vb": losses["vb"].float().mean().item(), "grad_norm": float(grad_norm)}

    def _sample_timesteps(self, count: int, gen: torch.Generator) -> torch.Tensor:
        s, total = self.settings, self.diffusion.num_steps
        t = torch.randint(0, total, (count,), generator=gen)
        high = torch.randint(min(s.high_noise_from, total - 1), total, (count,), generator=gen)
        pick_high = torch.rand(count, generator=gen) < s.high_noise_share
        return torch.where(pick_high, high, t)

    def mse_weights(self, t: torch.Tensor) -> torch.Tensor:
        """clip(1/SNR(t), 1, cap): ones when the cap is 1 (GLIDE's plain objective)."""
        acp = torch.as_tensor(self.diffusion.alphas_cumprod, dtype=torch.float64)[t]
        inverse_snr = (1.0 - acp) / acp
        return inverse_snr.clamp(1.0, self.settings.snr_weight_cap).float()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = ema_decay_at(self.step, self.settings.ema_decay)
        for ema_p, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1 - decay)
