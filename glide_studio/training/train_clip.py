"""Train (or resume) the demo noised CLIP on the shapes world, and export it to weights/.

    python -m glide_studio.training.train_clip train --out runs/demo-clip --steps 4000
    python -m glide_studio.training.train_clip export --run runs/demo-clip

As GLIDE trained its noised CLIP: a contrastive loss between captions and pictures noised to a random
timestep of the cosine schedule, the image encoder told the timestep. Captions that occur twice in a batch
are both right answers (a soft target), not each other's negatives.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints.integrity import pin_digest
from ..diffusion.gaussian import Diffusion
from ..models import build_clip_image_encoder, build_clip_text_encoder, normalize_embedding
from ..models.tokenizers import clip_tokenize_prompts
from .clip_data import clip_batch
from .demo_configs import DEMO_CLIP_OPTIONS
from .trainer import TrainingLoop, ema_decay_at, save_checkpoint

IMAGE_NAME, TEXT_NAME = "demo-clip-image-enc", "demo-clip-text-enc"
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class ClipTrainSettings:
    out_dir: str
    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.05
    ema_decay: float = 0.995
    checkpoint_every: int = 50
    seed: int = 0
    bf16: bool = True


def noised(pictures: np.ndarray, t: torch.Tensor, gen: torch.Generator, alphas_cumprod: np.ndarray) -> torch.Tensor:
    """x_t of the pictures in the encoder's 0..255 input scale."""
    x0 = torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    acp = torch.as_tensor(alphas_cumprod, dtype=torch.float32)[t][:, None, None, None]
    x_t = acp.sqrt() * x0 + (1 - acp).sqrt() * torch.randn(x0.shape, generator=gen)
    return (x_t + 1.0) * 127.5


def truncated_tokens(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP tokens cut after the longest caption: the text encoder is causal and read at the end token, so the
    padding after it never changes the embedding."""
    tokens, lengths = clip_tokenize_prompts(captions)
    return tokens[:, : int(lengths.max())], lengths


def contrastive_loss(image_z: torch.Tensor, text_z: torch.Tensor, logit_scale: torch.Tensor,
                     captions: list[str]) -> torch.Tensor:
    logits = logit_scale.exp() * normalize_embedding(image_z.float()) @ normalize_embedding(text_z.float()).T
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32)
    target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ClipTrainer(TrainingLoop):
    progress_name = "demo-clip"

    def __init__(self, settings: ClipTrainSettings, options: dict | None = None):
        self.settings = settings
        self.options = dict(options or DEMO_CLIP_OPTIONS)
        self.out_dir = Path(settings.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with torch.random.fork_rng(devices=[]):  # the run's first weights follow its seed, not the process's
            torch.manual_seed(settings.seed)
            self.image = build_clip_image_encoder(self.options).train()
            self.text = build_clip_text_encoder(self.options).train()
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.ema = {"image": copy.deepcopy(self.image.state_dict()), "text": copy.deepcopy(self.text.state_dict())}
        params = [*self.image.parameters(), *self.text.parameters(), self.logit_scale]
        self.optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        self.alphas_cumprod = Diffusion(self.options["beta_schedule"]).alphas_cumprod
        self.step = 0
        path = self.checkpoint_path
        if path.is_file():
            state = torch.load(path, weights_only=True)
            self.image.load_state_dict(state["image"])
            self.text.load_state_dict(state["text"])
            self.ema = state["ema"]
            self.optimizer.load_state_dict(state["optimizer"])
            with torch.no_grad():
                self.logit_scale.copy_(state["logit_scale"])
            self.step = int(state["step"])

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "state.pt"

    def save(self) -> None:
        state = {"image": self.image.state_dict(), "text": self.text.state_dict(), "ema": self.ema,
                 "optimizer": self.optimizer.state_dict(), "logit_scale": self.logit_scale.detach(),
                 "step": self.step}
        save_checkpoint(state, self.checkpoint_path)
        (self.out_dir / "settings.json").write_text(json.dumps({**asdict(self.settings), "options": self.options},
                                                               indent=1))

    def train_step(self) -> dict[str, float]:
        s = self.settings
        # Seeded per step, so a resumed run sees the batches an uninterrupted one would have.
        rng = np.random.default_rng([s.seed, self.step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pictures, captions = clip_batch(rng, s.batch_size)
        t = torch.randint(0, len(self.alphas_cumprod), (len(captions),), generator=gen)
        images = noised(pictures, t, gen, self.alphas_cumprod)
        tokens, lengths = truncated_tokens(captions)
        for group in self.optimizer.param_groups:
            group["lr"] = s.learning_rate * min(1.0, (self.step + 1) / s.warmup_steps) * self._cosine_decay()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16):
            loss = contrastive_loss(self.image(images, t), self.text(tokens, lengths), self.logit_scale, captions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_([*self.image.parameters(), *self.text.parameters()], 1.0)
        self.optimizer.step()
        with torch.no_grad():
            self.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
        self._update_ema()
        self.step += 1
        scale = float(self.logit_scale.detach().exp())
        return {"loss": loss.item(), "grad_norm": float(grad_norm), "logit_scale": scale}

    def _cosine_decay(self) -> float:
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, self.step / max(1, self.settings.steps))))

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = ema_decay_at(self.step, self.settings.ema_decay)
        for key, module in (("image", self.image), ("text", self.text)):
            for name, value in module.state_dict().items():
                self.ema[key][name].lerp_(value.float(), 1 - decay)


def export(run_dir: Path, dest_dir: Path) -> list[Path]:
    """The run's EMA encoders as fp16 safetensors, each with its official-style options json."""
    from safetensors.torch import save_file

    state = torch.load(run_dir / "state.pt", weights_only=True)
    settings = json.loads((run_dir / "settings.json").read_text())
    options = {**settings["options"], "logit_scale": round(float(state["logit_scale"].exp()), 3)}
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, key in ((IMAGE_NAME, "image"), (TEXT_NAME, "text")):
        path = dest_dir / f"{name}.safetensors"
        weights = {k: v.to(torch.float16).contiguous() for k, v in state["ema"][key].items()}
        save_file(weights, str(path), metadata={"name": name, "steps": str(state["step"])})
        path.chmod(0o644)
        info = {"name": name, "options": options, "training_steps": int(state["step"]),
                "batch_size": settings["batch_size"], "learning_rate": settings["learning_rate"],
                "ema_decay": settings["ema_decay"], "seed": settings["seed"], "weights": "ema"}
        (dest_dir / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
        pin_digest(path, dest_dir / f"{name}.json")  # the app refuses shipped weights without their digest
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("train", "export"))
    parser.add_argument("--out", type=Path, help="train: the run directory (checkpoints, log)")
    parser.add_argument("--run", type=Path, help="export: the run directory")
    parser.add_argument("--dest", type=Path, default=Path("weights"))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.action == "export":
        for path in export(args.run, args.dest):
            print(path)
        return 0
    ClipTrainer(ClipTrainSettings(out_dir=str(args.out), steps=args.steps, batch_size=args.batch_size,
                                  learning_rate=args.lr, seed=args.seed)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
