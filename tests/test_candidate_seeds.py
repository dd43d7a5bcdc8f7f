"""Every candidate of a batch is reproducible on its own: candidate i draws its noise from the run's seed + i
(A1111's numbering), `repeat` of candidate i gives exactly candidate i, and `--seed -1` records the seed drawn."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_helpers import request_for, tiny_model_set

from glide_studio import cli, pipelines
from glide_studio.pipelines.request import MAX_SEED, Mode, Request
from glide_studio.pipelines.stages import noise_for
from glide_studio.png_metadata import read_record
from glide_studio.runs.drain import drain


def test_each_row_of_a_batch_draws_what_its_candidate_draws_alone():
    request = Request(mode=Mode.GENERATE, seed=40, batch=3)
    batch = noise_for(request)
    alone = [noise_for(request.alone(i)) for i in range(3)]
    for shape in ((3, 3, 8, 8), (3, 3, 4, 4), (3, 3, 8, 8)):  # x_T, then the steps' draws
        rows = batch.draw(shape)
        for i, source in enumerate(alone):
            assert torch.equal(rows[i:i + 1], source.draw((1, *shape[1:])))
    assert request.alone(2) == request.with_(seed=42, batch=1)
    assert Request(seed=MAX_SEED, batch=2).candidate_seed(1) == 0  # wraps within the seed range
    with pytest.raises(ValueError, match="3 per-row generators cannot draw"):
        batch.draw((2, 3, 4, 4))


def test_a_batch_of_one_draws_as_before():
    """One candidate's noise is the run seed's generator drawing whole tensors, as before per-row seeds."""
    generator = torch.Generator().manual_seed(7)
    expected = torch.randn((1, 3, 8, 8), generator=generator)
    assert torch.equal(noise_for(Request(seed=7, batch=1)).draw((1, 3, 8, 8)), expected)


@pytest.fixture(scope="module")
def tiny_models(reference_dir):
    return tiny_model_set(reference_dir)


@pytest.mark.parametrize("mode", [Mode.GENERATE, Mode.INPAINT, Mode.SDEDIT])
def test_candidate_i_alone_is_the_same_picture_up_to_rounding(tiny_models, mode):
    request = request_for(mode, batch=3, steps=3, upsample_steps=2)
    batch = drain(pipelines.run(tiny_models, request))
    for i in range(3):
        alone = drain(pipelines.run(tiny_models, request.alone(i)))[0]
        difference = np.abs(batch[i].astype(int) - alone)
        # The noise is the same; the networks' arithmetic differs in its last bits between batch sizes (matrix
        # products block differently), so on these tiny networks a rare value rounds the other way (the demo
        # models carry it further: benchmarks/eval_candidate_seeds.py).
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001
    assert not np.array_equal(batch[0], batch[1])


@pytest.fixture
def cli_tiny_models(tiny_models, monkeypatch):
    from glide_studio.runs import models

    monkeypatch.setattr(models, "load_model_set", lambda request, device, precision: tiny_models)
    return tiny_models


def _pixels(path):
    return np.asarray(Image.open(path))


def test_repeat_of_candidate_i_gives_exactly_candidate_i(tmp_path, cli_tiny_models, capsys):
    args = ["generate", "--prompt", "a red circle", "--seed", "20", "--candidates", "3", "--steps", "3",
            "--upsample-steps", "2", "--device", "cpu", "-q"]
    assert cli.main([*args, "-o", str(tmp_path / "run.png")]) == 0
    assert "Seed: 22," in Image.open(tmp_path / "run-2.png").text["parameters"]  # A1111's seed + i
    assert cli.main(["repeat", str(tmp_path / "run-2.png"), "-q", "-o", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(_pixels(tmp_path / "again.png"), _pixels(tmp_path / "run-2.png"))
    again = read_record(tmp_path / "again.png").record
    assert (again.request.seed, again.request.batch, again.candidate) == (20, 3, 2)

    # With --candidates the repeat is a new run from candidate 2's own settings: its seed, alone.
    assert cli.main(["repeat", str(tmp_path / "run-2.png"), "--candidates", "1", "-q",
                     "-o", str(tmp_path / "alone.png")]) == 0
    alone = read_record(tmp_path / "alone.png").record
    assert (alone.request.seed, alone.request.batch, alone.candidate) == (22, 1, 0)
    difference = np.abs(_pixels(tmp_path / "alone.png").astype(int) - _pixels(tmp_path / "run-2.png"))
    assert difference.max() <= 1


def test_seed_minus_one_draws_a_seed_and_records_it(tmp_path, cli_tiny_models, capsys):
    args = ["generate", "--prompt", "a blue square", "--steps", "2", "--upsample-steps", "1", "--device", "cpu"]
    assert cli.main([*args, "--seed", "-1", "-o", str(tmp_path / "random.png")]) == 0
    drawn = re.search(r"random seed (\d+)", capsys.readouterr().err)
    assert drawn is not None
    seed = int(drawn.group(1))
    assert 0 <= seed <= MAX_SEED and read_record(tmp_path / "random.png").record.request.seed == seed
    assert cli.main([*args, "--seed", str(seed), "-q", "-o", str(tmp_path / "given.png")]) == 0
    assert np.array_equal(_pixels(tmp_path / "random.png"), _pixels(tmp_path / "given.png"))


def test_repeat_finds_its_inputs_by_name_or_by_digest_wherever_the_png_goes(tmp_path, cli_tiny_models, monkeypatch):
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    picture = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    Image.fromarray(picture).save(first / "picture.png")
    Image.fromarray(mask).save(first / "mask.png")
    args = ["inpaint", "--image", str(first / "picture.png"), "--mask", str(first / "mask.png"), "--prompt", "x",
            "--seed", "3", "--steps", "2", "--upsample-steps", "1", "--device", "cpu", "-q"]
    assert cli.main([*args, "-o", str(first / "out.png")]) == 0
    record = read_record(first / "out.png").record
    assert record.inputs["image"].path == "picture.png" and record.inputs["mask"].path == "mask.png"
    assert str(tmp_path).encode() not in (first / "out.png").read_bytes()

    (elsewhere / "out.png").write_bytes((first / "out.png").read_bytes())  # shared without its inputs
    monkeypatch.chdir(elsewhere)
    assert cli.main(["repeat", "out.png", "-q", "-o", "again.png"]) == 0  # the inputs kept by digest
    assert np.array_equal(_pixels(elsewhere / "again.png"), _pixels(first / "out.png"))


def test_repeating_a_batch_from_before_per_candidate_seeds_says_the_pixels_will_differ(tmp_path, fake_models,
                                                                                    capsys):
    import json

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    old = {"format": 2, "candidate": 1, "context": {"device": "cpu", "precision": "fp32"},
           "request": {"mode": "generate", "prompt": "p", "seed": 3, "batch": 2, "upsample_model": None}}
    info.add_itxt("glide_studio", json.dumps(old), zip=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "old.png", pnginfo=info)
    assert cli.main(["repeat", str(tmp_path / "old.png"), "-q", "-o", str(tmp_path / "again.png")]) == 0
    assert "drew all from one generator, so the pixels will differ" in capsys.readouterr().err
