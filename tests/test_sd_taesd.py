"""TAESD when the user has it: a tiny AutoencoderTiny built here, found under the user's models folder or in the
Hub cache, decodes every step's preview at full resolution; the final picture is still the model's own VAE decode,
bit for bit; a TAESD that does not fit (or is broken) leaves the linear projection; sd-download fetches its files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sd_helpers import save_folder

from glide_studio import cli
from glide_studio.pipelines.request import Mode, Request
from glide_studio.runs.drain import drain
from glide_studio.sd import taesd
from glide_studio.sd.loading import load_model
from glide_studio.sd.pipeline import run
from glide_studio.sd.taesd import TINY_DECODER_FILES

WIDTH, HEIGHT = 40, 36


def save_tiny_decoder(folder, latent_channels=4, seed=0):
    """An AutoencoderTiny for the tiny SD's VAE (4 px per latent pixel: two upsamplings)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                    num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1),
                    latent_channels=latent_channels).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_folder(tmp_path_factory.mktemp("sd") / "tiny-inpaint", seed=2)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("GLIDE_STUDIO_SD_MODELS", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    return tmp_path


def inpaint(name):
    picture = np.random.default_rng(4).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[8:28, 6:30] = 255
    return Request(mode=Mode.INPAINT, base_model=name, prompt="a red circle", image=picture, mask=mask, steps=3,
                   seed=2, batch=2, guidance_scale=5.0)


def test_taesd_under_the_models_folder_previews_at_full_resolution_and_leaves_the_result(isolated, model_folder):
    name = f"sd:{model_folder}"
    plain_steps, taesd_steps = [], []
    plain = drain(run(load_model(name, "cpu", "fp32"), inpaint(name)), plain_steps.append)
    save_tiny_decoder(isolated / "models" / "taesd")
    models = load_model(name, "cpu", "fp32")
    assert models.preview_decoder is not None
    decoded = []
    original = models.preview_decoder.decode

    def recording(latents, **kwargs):
        output = original(latents, **kwargs)
        decoded.append(output.sample)
        return output

    models.preview_decoder.decode = recording
    result = drain(run(models, inpaint(name)), taesd_steps.append)
    assert np.array_equal(result, plain)  # the final picture is the model's own VAE decode
    side = models.model_size
    latent_side = side // models.vae_scale
    assert all(step.pred_x0.shape == step.x_t.shape == (2, 3, latent_side, latent_side) for step in plain_steps)
    assert all(step.pred_x0.shape == step.x_t.shape == (2, 3, side, side) for step in taesd_steps)
    assert len(decoded) == 2 * len(taesd_steps)  # x_t and the prediction, every step
    assert torch.equal(taesd_steps[-1].pred_x0, decoded[-1].clamp(-1, 1))
    assert float(taesd_steps[0].pred_x0.abs().max()) <= 1.0


def test_taesd_in_the_hub_cache_is_found_and_sdxl_asks_for_its_own(isolated):
    snapshot = isolated / "hub-cache" / "models--madebyollin--taesd" / "snapshots" / "abc123"
    save_tiny_decoder(snapshot)
    (snapshot.parent.parent / "refs").mkdir(parents=True)
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    assert taesd.folder("madebyollin/taesd") == snapshot
    assert taesd.load_for(False, "cpu", 4) is not None
    assert taesd.load_for(True, "cpu", 4) is None  # SDXL's latents need taesdxl, which is not here


def test_a_taesd_that_does_not_fit_or_is_broken_leaves_the_projection(isolated, model_folder):
    save_tiny_decoder(isolated / "models" / "taesd", latent_channels=8)
    assert taesd.load_for(False, "cpu", 4) is None
    (isolated / "models" / "taesd" / "config.json").write_text("{not json")
    models = load_model(f"sd:{model_folder}", "cpu", "fp32")  # the model still loads
    assert models.preview_decoder is None


def test_sd_download_fetches_taesd_s_files_and_sd_models_lists_it(isolated, monkeypatch, capsys):
    from glide_studio.sd import hub

    asked = []

    def fetch_files(repo_id, patterns, **kwargs):
        asked.append((repo_id, tuple(patterns)))
        return isolated / "fetched"

    monkeypatch.setattr(hub, "fetch_files", fetch_files)
    assert cli.main(["sd-download", "taesdxl"]) == 0
    assert asked == [("madebyollin/taesdxl", TINY_DECODER_FILES)]
    assert cli.main(["sd-models"]) == 0
    listing = capsys.readouterr().out
    assert "taesd " in listing and "madebyollin/taesdxl" in listing and "not downloaded" in listing
