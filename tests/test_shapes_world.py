"""Rendering of the shapes world: anti-aliasing, resolution consistency, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.shapes import world


def test_render_64_is_the_256_render_box_filtered():
    scene = world.sample_scenes(21, 1, n_objects=3)[0]
    small, big = world.render_pair(scene)
    assert small.shape == (64, 64, 3) and big.shape == (256, 256, 3) and small.dtype == np.uint8
    assert np.array_equal(world.render_64(scene), small)
    pooled = big.astype(float).reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small).max() <= 1.0


def test_edges_are_anti_aliased_and_interiors_exact():
    scene = world.Scene(world.Background("white"), (world.ShapeObject("circle", "blue", "large", 0.5, 0.5, 0.2),))
    image = world.render(scene, 64)
    assert tuple(image[32, 32]) == world.COLOURS["blue"]
    assert tuple(image[2, 2]) == world.PALETTE["white"]
    alpha = world.object_alpha(scene, 0, 64)
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert edge.sum() > 30
    # Pillow fills polygons inclusive of their edge: ~1/8 px outward at 4x supersampling, i.e. ~1.5 %.
    assert alpha.sum() == pytest.approx(np.pi * (0.2 * 64) ** 2, rel=0.025)


def test_textured_backgrounds_stay_their_colour():
    for scene in world.sample_scenes(31, 60, n_objects=0):
        image = world.render(scene, 64).astype(float)
        palette = np.array(list(world.PALETTE.values()), float)
        nearest = np.abs(image[:, :, None, :] - palette).sum(-1).argmin(-1)
        assert np.all(nearest == list(world.PALETTE).index(scene.background.colour))


def test_bad_scene_values_raise_our_error():
    with pytest.raises(world.ShapesError, match="unknown shape kind"):
        hexagon = world.ShapeObject("hexagon", "red", "small", 0.5, 0.5, 0.1)
        world.render(world.Scene(world.Background("white"), (hexagon,)))
    with pytest.raises(world.ShapesError, match="background colour"):
        world.render(world.Scene(world.Background("mauve")))
    with pytest.raises(world.ShapesError, match="n_objects"):
        world.sample_scene(np.random.default_rng(0), n_objects=9)
