"""The shipped demo noised CLIP: loaded like OpenAI's, laid out like OpenAI's, guiding runs, scoring candidates."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open

from glide_studio import checkpoints
from glide_studio.app.engine import PipelineEngine
from glide_studio.pipelines import Mode, Request
from glide_studio.pipelines.request import Guidance
from glide_studio.runs.drain import drain
from glide_studio.runs.models import background_captions, load_scorer
from glide_studio.runs.scoring import crops, ranked
from glide_studio.shapes import oracle, world

NAMES = {"clip-image-enc": "demo-clip-image-enc", "clip-text-enc": "demo-clip-text-enc"}
BLOCK = re.compile(r"\.block_(\d+)\.")


@pytest.fixture(scope="module")
def scorer():
    found = load_scorer(Request(), "cpu")
    assert found is not None, "the demo noised CLIP is not in weights/"
    return found


@pytest.mark.parametrize("official", sorted(NAMES))
def test_the_demo_clip_has_the_official_layout_for_its_options(reference_dir, official):
    manifest = json.loads((reference_dir / "manifests" / f"{official}.json").read_text())
    name = NAMES[official]
    path = checkpoints.demo_paths(name)[0]
    with safe_open(str(path), framework="pt") as handle:
        ours = list(handle.keys())
    options = checkpoints.network_options(name)
    blocks = options["n_xf_blocks_image" if "image" in name else "n_xf_blocks_text"]
    expected = [key for key, _, _ in manifest["state_dict"]
                if not BLOCK.search(key) or int(BLOCK.search(key).group(1)) < blocks]
    assert sorted(ours) == sorted(expected)  # OpenAI's names, the blocks this width has
    assert set(options) == set(manifest["options"])  # the same config keys
    network = checkpoints.load_network(name, "cpu")  # the same checked loader as OpenAI's files
    assert type(network).__name__ == ("CLIPImageEncoder" if "image" in name else "CLIPTextEncoder")
    assert all(torch.isfinite(value).all() for value in network.state_dict().values())


def test_the_demo_clip_pairs_with_the_demo_models_and_openais_with_theirs():
    assert checkpoints.clip_encoders_for("demo-base-inpaint") == ("demo-clip-image-enc", "demo-clip-text-enc")
    assert checkpoints.clip_encoders_for("base-inpaint") == ("clip-image-enc", "clip-text-enc")


def _scene_with_and_without(colour: str, kind: str):
    obj = world.ShapeObject(kind, colour, "large", 0.5, 0.5, 0.2)
    background = world.Background("blue", "plain", 3)
    region = np.zeros((64, 64), dtype=np.uint8)
    region[16:48, 16:48] = 255
    return (world.render(world.Scene(background, (obj,)), 64), world.render(world.Scene(background, ()), 64),
            region)


def test_a_region_showing_its_caption_scores_higher_and_bare_background_is_flagged(scorer):
    shown, bare, region = _scene_with_and_without("yellow", "star")
    request = Request(mode=Mode.INPAINT, prompt="a yellow star", image=bare, mask=region)
    with_star, without = scorer.score(request, np.stack([shown, bare]))
    assert with_star.similarity > without.similarity
    assert not with_star.missed and without.missed
    assert ranked([without, with_star]) == [1, 0]


def test_a_forced_miss_an_empty_caption_inpaint_is_flagged(scorer, tmp_path):
    """An empty caption leaves the hole to the unconditional model, which draws what it likes; scored against
    "a red circle", every candidate the oracle says is no red circle is flagged."""
    _, bare, region = _scene_with_and_without("red", "circle")
    engine = PipelineEngine(precision="fp32")
    empty = Request(mode=Mode.INPAINT, prompt="", image=bare, mask=region, upsample_model=None, batch=3)
    engine.load_models(empty, "cpu")
    filled = drain(engine.run(empty))
    scores = engine.score(empty.with_(prompt="a red circle"), filled)
    found = [oracle.detect(picture, region > 0) for picture in filled]
    assert not any(f is not None and (f.colour, f.kind) == ("red", "circle") for f in found)  # the forced miss
    assert len(scores) == 3 and all(score.missed for score in scores)


def test_clip_guidance_runs_in_the_gui_engine_and_steers_the_result():
    image, bare, region = _scene_with_and_without("green", "square")
    engine = PipelineEngine(precision="fp32")
    request = Request(mode=Mode.INPAINT, prompt="a green square", image=bare, mask=region, steps=5,
                      upsample_model=None, guidance=Guidance.CLIP, guidance_scale=3.0, seed=4)
    engine.load_models(request, "cpu")
    guided = drain(engine.run(request))
    unguided = drain(engine.run(request.with_(guidance_scale=0.0)))
    assert guided.shape == unguided.shape == (1, 64, 64, 3)
    assert not np.array_equal(guided, unguided)  # the CLIP gradient moved the sample
    outside = region == 0
    assert np.array_equal(guided[0][outside], bare[outside])


def test_without_a_clip_for_the_model_there_are_no_scores(monkeypatch):
    def missing(name, device, **_kwargs):
        raise checkpoints.MissingWeightsError(f"{name} is not here")

    monkeypatch.setattr(checkpoints, "load_network", missing)
    assert load_scorer(Request(), "cpu") is None


def test_openais_clip_ranks_through_the_same_scorer(reference_dir, monkeypatch):
    """OpenAI's models are paired with OpenAI's CLIP (here: the reference's tiny encoders in its official layout),
    scored without the demo's floor, against generic background captions."""
    from pipeline_helpers import load as load_reference

    from glide_studio.models import build_clip_image_encoder, build_clip_text_encoder

    official = {"clip-image-enc": ("tiny-clip-image-enc", build_clip_image_encoder),
                "clip-text-enc": ("tiny-clip-text-enc", build_clip_text_encoder)}
    asked = []

    def reference_network(name, device, **_kwargs):
        asked.append(name)
        return load_reference(reference_dir, *official[name])

    monkeypatch.setattr(checkpoints, "load_network", reference_network)
    shown, bare, region = _scene_with_and_without("red", "circle")
    request = Request(mode=Mode.INPAINT, base_model="base-inpaint", upsample_model="upsample-inpaint",
                      prompt="a red circle", image=bare, mask=region)
    scorer = load_scorer(request, "cpu")
    assert asked == ["clip-image-enc", "clip-text-enc"] and scorer.floor is None
    noise = np.random.default_rng(3).integers(0, 256, shown.shape, dtype=np.uint8)
    scores = scorer.score(request, np.stack([shown, bare, noise]))
    table = scorer.similarities(crops(np.stack([shown, bare, noise]), region, scorer.size),
                                ["a red circle", *background_captions("base-inpaint")])
    assert [s.similarity for s in scores] == pytest.approx(table[:, 0].tolist(), abs=1e-6)
    assert [s.background for s in scores] == pytest.approx(table[:, 1:].max(axis=1).tolist(), abs=1e-6)
    assert all(s.missed == (s.similarity <= s.background) for s in scores)  # no floor: the comparison alone
    assert len({round(s.similarity, 6) for s in scores}) == 3
    assert ranked(scores) == sorted(range(3), key=lambda i: -table[i, 0])
