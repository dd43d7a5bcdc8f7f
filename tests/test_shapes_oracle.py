"""The oracle on held-out rendered scenes with loose box regions (neighbours and textures inside)."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.shapes import oracle, world


def _loose_box(mask: np.ndarray, margin: int) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    size = mask.shape[0]
    region = np.zeros_like(mask)
    region[max(0, rows.min() - margin):min(size, rows.max() + 1 + margin),
           max(0, cols.min() - margin):min(size, cols.max() + 1 + margin)] = True
    return region


@pytest.mark.parametrize("size", [64, 256])
def test_oracle_on_loose_boxes_with_neighbours(size):
    right = total = crowded = 0
    for scene in world.sample_scenes(90_000 + size, 120, n_objects=3):
        image = world.render(scene, size) if size == 64 else world.render_pair(scene)[1]
        for i, obj in enumerate(scene.objects):
            region = _loose_box(world.object_mask(scene, i, size), margin=size // 16)
            others = [world.object_mask(scene, j, size) & region for j in range(len(scene.objects)) if j != i]
            crowded += any(o.any() for o in others)
            found = oracle.detect(image, region)
            total += 1
            right += found is not None and (found.colour, found.kind) == (obj.colour, obj.kind)
    assert total >= 300 and crowded >= 20
    assert right / total >= 0.99, f"{right}/{total}"


def test_oracle_reads_position_from_the_centroid():
    for scene in world.sample_scenes(77, 40, n_objects=1):
        obj = scene.objects[0]
        found = oracle.detect(world.render(scene, 64), np.ones((64, 64), bool))
        assert found is not None
        assert found.centroid == pytest.approx((obj.cx, obj.cy), abs=0.02)


def test_oracle_silhouette_is_the_renderers_half_coverage_mask():
    """Solving the blend for coverage recovers world.object_mask; nearest-colour alone shrinks high-contrast
    objects (a black star's grey tips on white are nearer gray than black) and is kept only for comparison."""
    ious = {"coverage": [], "nearest": []}
    for scene in world.sample_scenes(4242, 200, n_objects=1):
        image = world.render(scene, 64)
        truth = world.object_mask(scene, 0, 64)
        region = _loose_box(truth, margin=3)
        for rule, values in ious.items():
            found = oracle.detect(image, region, silhouette=rule)
            assert found is not None and found.kind == scene.objects[0].kind
            values.append((found.mask & truth).sum() / (found.mask | truth).sum())
    coverage, nearest = np.array(ious["coverage"]), np.array(ious["nearest"])
    assert coverage.mean() >= 0.98 and coverage.min() >= 0.88, (coverage.mean(), coverage.min())
    assert nearest.mean() < 0.96 and nearest.min() < 0.85  # what the coverage rule fixes
    with pytest.raises(ValueError, match="silhouette"):
        oracle.detect(image, region, silhouette="convex")
