"""The shapes world (deterministic scenes) and its oracle (right on rendered scenes)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from glide_studio.shapes import captions, oracle, world
from glide_studio.training.shapes_data import object_phrase, scene_caption


def test_same_seed_same_scene_and_pixels():
    a = world.sample_scenes(11, 5)
    b = world.sample_scenes(11, 5)
    assert a == b
    assert np.array_equal(world.render(a[3], 64), world.render(b[3], 64))
    assert a != world.sample_scenes(12, 5)


def test_scenes_follow_the_rules():
    for scene in world.sample_scenes(3, 200):
        colours = [o.colour for o in scene.objects]
        assert 1 <= len(colours) <= 3 and len(set(colours)) == len(colours)
        assert scene.background.colour not in colours
        for i in range(len(scene.objects)):
            assert world.object_mask(scene, i, 64).sum() >= 60  # recognisable at 64 px


@pytest.mark.parametrize("size", [64, 256])
def test_oracle_names_rendered_objects(size):
    right = total = 0
    for scene in world.sample_scenes(20_000 + size, 150):
        image = world.render(scene, size, supersample=4 if size == 64 else 2)
        for i, obj in enumerate(scene.objects):
            region = ndimage.binary_dilation(world.object_mask(scene, i, size), iterations=max(2, size // 32))
            found = oracle.detect(image, region)
            total += 1
            right += found is not None and (found.colour, found.kind) == (obj.colour, obj.kind)
    assert total >= 200
    assert right / total >= 0.99, f"{right}/{total}"


def test_oracle_finds_nothing_on_bare_background():
    rng = np.random.default_rng(5)
    for _ in range(20):
        scene = world.sample_scene(rng, n_objects=0)
        image = world.render(scene, 64)
        region = np.zeros((64, 64), bool)
        region[20:44, 20:44] = True
        assert oracle.detect(image, region) is None


def test_oracle_checks_captions_and_places():
    scene = world.Scene(world.Background("white"), (world.ShapeObject("star", "red", "large", 0.25, 0.5, 0.2),))
    image = world.render(scene, 64)
    region = np.zeros((64, 64), bool)
    region[10:54, 0:32] = True
    right = oracle.check(image, region, "a red star on the left")
    assert (right.colour_ok, right.shape_ok, right.position_ok) == (True, True, True)
    assert right.detection.centroid[0] == pytest.approx(0.25, abs=0.03)
    wrong = oracle.check(image, region, "a blue circle on the right")
    assert (wrong.colour_ok, wrong.shape_ok, wrong.position_ok) == (False, False, False)


def test_training_captions_parse():
    rng = np.random.default_rng(0)
    for scene in world.sample_scenes(8, 50):
        for obj in scene.objects:
            colour, kind, _, _ = captions.parse_phrase(object_phrase(obj, rng))
            assert (colour, kind) == (obj.colour, obj.kind)
        assert scene_caption(scene, rng)
    with pytest.raises(world.ShapesError):
        oracle.check(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), bool), "a corgi in a field")
