"""The demo CLIP's trainer: resumable on the same batches, exported in the app's format, judged by retrieval."""

from __future__ import annotations

import json

import numpy as np
import torch

from glide_studio.models import build_clip_image_encoder, build_clip_text_encoder, load_weights
from glide_studio.training.clip_data import clip_batch
from glide_studio.training.clip_eval import retrieval_accuracy
from glide_studio.training.demo_configs import DEMO_CLIP_OPTIONS
from glide_studio.training.train_clip import ClipTrainer, ClipTrainSettings, contrastive_loss, export

TINY = {**DEMO_CLIP_OPTIONS, "n_embd": 16, "n_head_state_text": 8, "n_head_text": 1, "n_xf_blocks_text": 1,
        "n_head_state_image": 8, "n_head_image": 2, "n_xf_blocks_image": 1, "patch_size": 16}


def _trainer(tmp_path, steps=3):
    return ClipTrainer(ClipTrainSettings(out_dir=str(tmp_path), steps=steps, batch_size=6, checkpoint_every=1,
                                         warmup_steps=1), TINY)


def test_batches_are_captioned_64px_pictures_of_every_kind():
    pictures, captions = clip_batch(np.random.default_rng(3), 40)
    assert pictures.shape == (40, 64, 64, 3) and pictures.dtype == np.uint8
    assert all(captions)
    assert any(c.endswith("background") and " and " not in c and c.count(" ") <= 3 for c in captions)  # bare
    assert any("background" not in c and " and " not in c for c in captions)  # one object's phrase


def test_duplicate_captions_are_both_right_answers():
    z, scale = torch.eye(3), torch.tensor(4.0)
    swapped = z[[1, 0, 2]]  # pictures 0 and 1 each matched with the other's text
    assert torch.isclose(contrastive_loss(z, swapped, scale, ["a", "a", "b"]),
                         contrastive_loss(z, z, scale, ["a", "a", "b"]))  # one caption: either text is right
    assert contrastive_loss(z, swapped, scale, ["a", "c", "b"]) > contrastive_loss(z, z, scale, ["a", "c", "b"])


def test_a_stopped_run_resumes_on_the_batches_it_would_have_seen(tmp_path):
    straight = _trainer(tmp_path / "straight")
    straight.run(progress=False)
    _trainer(tmp_path / "stopped").run(progress=False, max_steps=2)  # stopped after two of its three steps
    resumed = _trainer(tmp_path / "stopped")
    assert resumed.step == 2
    resumed.run(progress=False)
    for key, value in straight.image.state_dict().items():
        assert torch.allclose(value, resumed.image.state_dict()[key], atol=1e-5), key


def test_export_writes_encoders_the_app_loads_and_retrieval_scores_them(tmp_path):
    _trainer(tmp_path / "run", steps=2).run(progress=False)
    image_path, text_path = export(tmp_path / "run", tmp_path / "weights")
    options = json.loads((tmp_path / "weights" / "demo-clip-image-enc.json").read_text())["options"]
    assert options["n_embd"] == 16 and options["logit_scale"] > 0
    image = load_weights(build_clip_image_encoder(options), image_path)
    text = load_weights(build_clip_text_encoder(options), text_path)
    found = retrieval_accuracy(image, text, count=12, timesteps=(0, 500))
    assert set(found) == {0, 500} and all(0.0 <= value <= 1.0 for value in found.values())
