"""Train (or resume) the embedded demo models on the shapes world, and export them to weights/.

    python -m glide_studio.training.train_demo base --out runs/demo-base --steps 6000
    python -m glide_studio.training.train_demo upsample --out runs/demo-upsample --steps 3000
    python -m glide_studio.training.train_demo export --run runs/demo-base --name demo-base-inpaint

Runs checkpoint every few minutes and resume where they stopped when started again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..checkpoints.integrity import pin_digest
from ..models.weights import read_state_dict
from .demo_configs import DEMO_OPTIONS
from .shapes_data import base_inpaint_batch, upsample_inpaint_batch
from .trainer import Trainer, TrainSettings, reset_text_pathway

KINDS = {
    "base": ("demo-base-inpaint", base_inpaint_batch),
    "upsample": ("demo-upsample-inpaint", upsample_inpaint_batch),
}


def read_weights_with_step(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """Exported weights (read with the app's own checked reader) and the training step in their metadata
    (0 when absent)."""
    from safetensors import safe_open

    weights = read_state_dict(path)
    with safe_open(str(path), framework="pt") as handle:
        return weights, int((handle.metadata() or {}).get("steps", 0))


def export(run_dir: Path, name: str, dest_dir: Path, weights_kind: str = "ema") -> Path:
    """Write the run's EMA (or raw) weights as fp16 safetensors plus the official-style options json."""
    from safetensors.torch import save_file

    state = torch.load(run_dir / "state.pt", weights_only=True)
    settings = json.loads((run_dir / "settings.json").read_text())
    weights = {k: v.to(torch.float16).contiguous() for k, v in state[weights_kind].items()}
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{name}.safetensors"
    save_file(weights, str(path), metadata={"name": name, "steps": str(state["step"])})
    path.chmod(0o644)  # safetensors writes owner-only files; these ship to every user
    info = {"name": name, "options": settings["options"], "training_steps": int(state["step"]),
            "batch_size": settings["batch_size"], "learning_rate": settings["learning_rate"],
            "ema_decay": settings["ema_decay"], "seed": settings["seed"], "weights": weights_kind}
    (dest_dir / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    pin_digest(path, dest_dir / f"{name}.json")  # the app refuses shipped weights without their digest
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=[*KINDS, "export"])
    parser.add_argument("--out", type=Path, help="run directory (checkpoints, log)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--high-noise-share", type=float, default=0.0,
                        help="share of timesteps drawn from the noisiest part of the chain (t >= --high-noise-from)")
    parser.add_argument("--high-noise-from", type=int, default=700)
    parser.add_argument("--snr-weight-cap", type=float, default=1.0,
                        help="weight the eps MSE by clip(1/SNR, 1, cap); 1 keeps GLIDE's plain objective")
    parser.add_argument("--text-encoder-lr-scale", type=float, default=1.0,
                        help="learning-rate factor of the text transformer and its embeddings")
    parser.add_argument("--reset-text", action="store_true",
                        help="with --init-from: fresh weights for the text pathway, the UNet keeps its own")
    parser.add_argument("--init-from", type=Path,
                        help="a new run starts from these weights (.safetensors, e.g. the shipped demo model)")
    parser.add_argument("--run", type=Path, help="export: the run directory")
    parser.add_argument("--name", help="export: the model name (demo-base-inpaint, demo-upsample-inpaint)")
    parser.add_argument("--dest", type=Path, default=Path("weights"))
    parser.add_argument("--weights", choices=("ema", "model"), default="ema",
                        help="export: the EMA of the weights or the raw weights of the last step")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.kind == "export":
        print(export(args.run, args.name, args.dest, args.weights))
        return 0
    name, make_batch = KINDS[args.kind]
    settings = TrainSettings(
        name=name, options=DEMO_OPTIONS[name], out_dir=str(args.out), steps=args.steps,
        batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
        checkpoint_every=args.checkpoint_every, bf16=not args.no_bf16,
        high_noise_share=args.high_noise_share, high_noise_from=args.high_noise_from,
        snr_weight_cap=args.snr_weight_cap, text_encoder_lr_scale=args.text_encoder_lr_scale,
    )
    trainer = Trainer(settings, make_batch)
    if args.init_from and trainer.step == 0:
        trainer.warm_start(*read_weights_with_step(args.init_from))
        if args.reset_text:
            reset_text_pathway(trainer.model, torch.Generator().manual_seed(args.seed))
            trainer.ema.load_state_dict(trainer.model.state_dict())
    if trainer.step >= settings.steps:
        print(f"{args.out} is already at step {trainer.step} and --steps is {settings.steps}: nothing to train; "
              "pass a larger --steps to go on")
        return 0
    trainer.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
