"""Training masks and SDEdit sketches of the shapes world."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.shapes import masks, world


def _is_binary(mask: np.ndarray, size: int) -> bool:
    return mask.shape == (size, size) and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}


@pytest.mark.parametrize("size", [64, 256])
def test_each_mask_kind_is_binary_and_nontrivial(size):
    rng = np.random.default_rng(3)
    scene = world.sample_scene(rng, n_objects=2)
    for mask in (masks.box_mask(rng, size), masks.stroke_mask(rng, size),
                 masks.object_silhouette_mask(scene, 1, size)):
        assert _is_binary(mask, size)
        assert 0.0 < mask.mean() < 0.9
    assert masks.full_mask(size).min() == 1.0


def test_silhouette_mask_covers_the_whole_object():
    scene = world.sample_scenes(4, 1, n_objects=1)[0]
    mask = masks.object_silhouette_mask(scene, 0, 64) > 0
    covered = world.object_alpha(scene, 0, 64) > 0
    assert np.all(mask[covered])
    assert mask.sum() > covered.sum()


def test_training_mask_mix_is_seeded_and_follows_the_weights():
    scenes = world.sample_scenes(5, 400)
    rng = np.random.default_rng(9)
    picks = [masks.sample_training_mask(rng, s, 64) for s in scenes]
    again = [masks.sample_training_mask(np.random.default_rng(9), scenes[0], 64)]
    assert np.array_equal(again[0].mask, picks[0].mask)
    counts = {k: sum(p.kind == k for p in picks) / len(picks) for k in masks.MASK_KINDS}
    for kind, weight in masks.DEFAULT_MASK_WEIGHTS.items():
        assert abs(counts[kind] - weight) < 0.08, counts
    for pick, scene in zip(picks, scenes, strict=True):
        assert _is_binary(pick.mask, 64)
        if pick.kind == "object":
            assert pick.mask[world.object_mask(scene, pick.object_index, 64)].min() == 1.0


def test_sketch_paints_the_object_colour_inside_its_mask():
    rng = np.random.default_rng(7)
    scene = world.sample_scenes(6, 1, n_objects=2)[0]
    image = world.render_64(scene)
    sketch = masks.make_sketch(rng, scene, 0, image)
    assert sketch.blob.sum() > 30
    assert np.all(sketch.mask[sketch.blob] == 1.0)
    outside = sketch.mask == 0
    assert np.array_equal(sketch.image[outside], image[outside])
    painted = sketch.image[sketch.blob].astype(float).mean(0)
    assert np.abs(painted - scene.objects[0].rgb).max() < 25
    overlap = (sketch.blob & world.object_mask(scene, 0, 64)).sum() / world.object_mask(scene, 0, 64).sum()
    assert overlap > 0.5


def test_bad_inputs_raise_our_error():
    rng = np.random.default_rng(0)
    scene = world.sample_scene(rng, n_objects=1)
    with pytest.raises(world.ShapesError):
        masks.box_mask(rng, 4)
    with pytest.raises(world.ShapesError):
        masks.make_sketch(rng, scene, 5, world.render_64(scene))
    with pytest.raises(world.ShapesError):
        masks.make_sketch(rng, scene, 0, np.zeros((64, 64), np.uint8))
    with pytest.raises(world.ShapesError):
        masks.sample_training_mask(rng, scene, 64, weights={"lasso": 1.0})
