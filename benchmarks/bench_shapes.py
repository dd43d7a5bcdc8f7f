"""Throughput of the shapes world: scene sampling, rendering, masks and the oracle (prints figures)."""

from __future__ import annotations

import time

import numpy as np

from glide_studio.shapes import masks, oracle, world


def _timed(label: str, count: int, fn) -> None:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {elapsed * 1000:8.1f} ms total  {elapsed / count * 1000:6.2f} ms each")


def main() -> None:
    scenes = world.sample_scenes(0, 64)
    rng = np.random.default_rng(0)
    _timed("sample 64 scenes", 64, lambda: world.sample_scenes(1, 64))
    _timed("render_64 x64 (256 px, 2x ss, box to 64)", 64, lambda: [world.render_64(s) for s in scenes])
    _timed("render 64 px x64 (4x ss)", 64, lambda: [world.render(s, 64) for s in scenes])
    _timed("render_pair x64 (64 + 256 px)", 64, lambda: [world.render_pair(s) for s in scenes])
    _timed("render 256 px x64 (4x ss)", 64, lambda: [world.render(s, 256) for s in scenes])
    _timed("sample_training_mask 64 px x64", 64, lambda: [masks.sample_training_mask(rng, s, 64) for s in scenes])
    images = [world.render(s, 64) for s in scenes]
    regions = [world.object_mask(s, 0, 64) | masks.box_mask(rng, 64).astype(bool) for s in scenes]
    _timed("oracle.detect 64 px x64", 64, lambda: [oracle.detect(i, r) for i, r in zip(images, regions, strict=True)])


if __name__ == "__main__":
    main()
