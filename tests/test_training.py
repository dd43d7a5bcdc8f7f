"""The demo-model trainer: it learns, it checkpoints, and a resumed run continues exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glide_studio.diffusion.losses import training_losses
from glide_studio.training.demo_configs import DEMO_OPTIONS
from glide_studio.training.shapes_data import base_inpaint_batch, sample_example, upsample_inpaint_batch
from glide_studio.training.trainer import Trainer, TrainSettings

TINY = {
    "image_size": 64, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
    "num_head_channels": 32, "attention_resolutions": "32", "dropout": 0.0,
    "xf_width": 32, "xf_layers": 1, "xf_heads": 1, "inpaint": True, "text_ctx": 20,
}


def _fixed_batch(rng, batch_size):
    # One fixed batch at 16 px (the tiny UNet is convolutional): the loss on it must fall.
    batch = base_inpaint_batch(np.random.default_rng(123), 4)
    return {k: v[..., ::4, ::4] if v.dim() == 4 else v for k, v in batch.items()}


def _eval_loss(trainer: Trainer, batch) -> float:
    gen = torch.Generator().manual_seed(7)
    x0 = batch["x0"]
    t = torch.tensor([50, 300, 600, 900])
    noise = torch.randn(x0.shape, generator=gen)
    kwargs = {k: v for k, v in batch.items() if k != "x0"}
    with torch.no_grad():
        losses = training_losses(trainer.model, trainer.diffusion, x0, t, noise, kwargs)
    return losses["mse"].mean().item()


def _settings(tmp_path, **kw):
    return TrainSettings(name="tiny", options=TINY, out_dir=str(tmp_path), batch_size=4, learning_rate=2e-3,
                         warmup_steps=1, checkpoint_every=5, bf16=False, **kw)


def test_a_few_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(_settings(tmp_path, steps=40), _fixed_batch)
    batch = _fixed_batch(None, 4)
    before = _eval_loss(trainer, batch)
    history = trainer.run(progress=False)
    after = _eval_loss(trainer, batch)
    assert len(history) == 40 and all(np.isfinite(r["loss"]) for r in history)
    assert after < 0.7 * before, (before, after)
    assert (tmp_path / "state.pt").is_file() and (tmp_path / "log.jsonl").read_text().count("\n") == 40


def test_resumed_run_continues_exactly(tmp_path):
    torch.manual_seed(0)
    straight = Trainer(_settings(tmp_path / "a", steps=6), _fixed_batch)
    losses_straight = [r["loss"] for r in straight.run(progress=False)]

    torch.manual_seed(0)
    first = Trainer(_settings(tmp_path / "b", steps=6), _fixed_batch)
    first.run(max_steps=3, progress=False)
    resumed = Trainer(_settings(tmp_path / "b", steps=6), _fixed_batch)
    assert resumed.step == 3
    losses_resumed = [r["loss"] for r in resumed.run(progress=False)]
    assert losses_resumed == pytest.approx(losses_straight[3:], rel=1e-5)

    finished = Trainer(_settings(tmp_path / "b", steps=6, high_noise_share=0.9), _fixed_batch)
    written = (tmp_path / "b" / "settings.json").read_text()
    assert finished.run(progress=False) == []
    assert (tmp_path / "b" / "settings.json").read_text() == written  # a finished run is not re-labelled


def test_training_examples_cover_every_task():
    rng = np.random.default_rng(0)
    fractions, captions = [], []
    for _ in range(200):
        _, region, caption = sample_example(rng)
        fractions.append(region.mean())
        captions.append(caption)
    fractions = np.array(fractions)
    assert (fractions == 1.0).mean() > 0.15  # pure generation
    assert ((fractions > 0) & (fractions < 0.5)).mean() > 0.4  # local edits
    assert 0.1 < sum(c == "" for c in captions) / len(captions) < 0.3  # classifier-free dropout


def test_batches_match_the_demo_architectures():
    from glide_studio.models import build_model

    base = base_inpaint_batch(np.random.default_rng(0), 2)
    up = upsample_inpaint_batch(np.random.default_rng(0), 2)
    assert base["x0"].shape == (2, 3, 64, 64) and up["low_res"].shape == (2, 3, 16, 16)
    assert set(base["inpaint_mask"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(base["inpaint_image"], base["x0"] * base["inpaint_mask"])
    for name, batch in (("demo-base-inpaint", base), ("demo-upsample-inpaint", up)):
        model = build_model(DEMO_OPTIONS[name])
        kwargs = {k: v for k, v in batch.items() if k != "x0"}
        with torch.no_grad():
            out = model(batch["x0"], torch.tensor([10, 500]), **kwargs)
        assert out.shape == (2, 6, 64, 64)


def test_high_noise_emphasis_weights_and_timesteps(tmp_path):
    plain = Trainer(_settings(tmp_path / "plain", steps=1), _fixed_batch)
    t = torch.tensor([0, 500, 900, 999])
    assert torch.equal(plain.mse_weights(t), torch.ones(4))
    emphasised = Trainer(_settings(tmp_path / "emph", steps=1, snr_weight_cap=20.0, high_noise_share=1.0,
                                   high_noise_from=800), _fixed_batch)
    weights = emphasised.mse_weights(t)
    assert weights[0] == 1.0 and weights[-1] == 20.0 and 1.0 < weights[2] <= 20.0
    drawn = emphasised._sample_timesteps(1000, torch.Generator().manual_seed(0))
    assert drawn.min() >= 800 and drawn.max() <= 999


def test_warm_start_with_a_fresh_text_pathway(tmp_path):
    from glide_studio.training.trainer import reset_text_pathway, split_text_encoder_parameters

    trained = Trainer(_settings(tmp_path / "a", steps=3), _fixed_batch)
    trained.run(progress=False)
    weights = {k: v.clone() for k, v in trained.ema.state_dict().items()}
    fresh = Trainer(_settings(tmp_path / "b", steps=5, text_encoder_lr_scale=0.1), _fixed_batch)
    fresh.warm_start(weights, step=3)
    reset_text_pathway(fresh.model, torch.Generator().manual_seed(1))
    state = fresh.model.state_dict()
    assert torch.equal(state["input_blocks.0.0.weight"], weights["input_blocks.0.0.weight"])
    assert not torch.equal(state["token_embedding.weight"], weights["token_embedding.weight"])
    assert not torch.equal(state["transformer_proj.weight"], weights["transformer_proj.weight"])
    encoder, rest = split_text_encoder_parameters(fresh.model)
    assert len(encoder) + len(rest) == len(list(fresh.model.parameters()))
    assert fresh.step == 3 and [g["lr_scale"] for g in fresh.optimizer.param_groups] == [1.0, 0.1]
    fresh.run(progress=False)
    assert fresh.step == 5
    with pytest.raises(FileExistsError):
        fresh.warm_start(weights, step=3)


def test_model_card_chains_a_warm_started_run_onto_its_parent(tmp_path):
    import json

    from glide_studio.training.model_card import chained_log

    first, second = tmp_path / "first", tmp_path / "second"
    for run, steps in ((first, range(1, 11)), (second, range(7, 13))):
        run.mkdir()
        (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "run": run.name}) + "\n" for s in steps))
    log = chained_log([first, second])
    assert [r["step"] for r in log] == list(range(1, 13))
    assert {r["run"] for r in log if r["step"] >= 7} == {"second"}


def test_model_card_describes_the_shipped_step_not_the_runs_latest(tmp_path):
    import json

    from glide_studio.training.model_card import _run_summary, _shipped_step

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "mse": float(s), "seconds": 1.0}) + "\n"
                                           for s in range(1, 21)))
    info = tmp_path / "demo.json"
    info.write_text(json.dumps({"training_steps": 12}))
    summary = _run_summary([run], _shipped_step(info))
    assert summary["steps"] == 12 and summary["seconds"] == 12.0 and summary["log"][-1]["mse"] == 12.0
    assert _shipped_step(tmp_path / "absent.json") is None and _run_summary([run])["steps"] == 20


def test_model_card_tables_what_each_captioned_kind_turned_into():
    from glide_studio.training.model_card import _eval_table, shapes_drawn_tables

    results = {"precision": "fp32", "sdedit": {"shape": 0.5, "tasks": 4},
               "shapes_drawn": {"sdedit": {"circle": {"square": 2, "circle": 1, "nothing": 1},
                                           "star": {"star": 4}}}}
    table = shapes_drawn_tables(results).splitlines()
    assert "| sdedit: captioned | right | circle | square | star | nothing |" in table
    assert "| circle | 25.0 % | 1 | 2 | 0 | 1 |" in table and "| star | 100.0 % | 0 | 0 | 4 | 0 |" in table
    assert "shapes_drawn" not in _eval_table(results) and shapes_drawn_tables({"precision": "fp32"}) == ""
