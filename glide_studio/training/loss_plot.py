"""A loss-curve figure for the model card, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 640, 360, 48


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Rolling median: the vb term has rare huge values (t = 0 decoder terms) that a mean would plot."""
    if len(values) < window:
        return values
    return np.median(np.lib.stride_tricks.sliding_window_view(values, window), axis=-1)


def plot_losses(log: list[dict], title: str, out: Path, keys: tuple[str, ...] = ("mse", "vb")) -> Path:
    """Log-scale curves of the given loss terms (rolling median of 25 steps) against training steps."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    steps = np.array([r["step"] for r in log], dtype=np.float64)
    series = {k: smooth(np.array([max(r[k], 1e-6) for r in log]), 25) for k in keys}
    lo = min(float(v.min()) for v in series.values())
    hi = max(float(v.max()) for v in series.values())
    lo_log, hi_log = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    max_step = max(steps[-1], 1.0)

    def xy(step: float, value: float) -> tuple[float, float]:
        fy = (math.log10(value) - lo_log) / max(hi_log - lo_log, 1)
        return MARGIN + plot_w * step / max_step, HEIGHT - MARGIN - plot_h * fy

    draw.rectangle([MARGIN, MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN], outline="black")
    for decade in range(lo_log, hi_log + 1):
        _, y = xy(0, 10.0**decade)
        draw.line([MARGIN, y, WIDTH - MARGIN, y], fill=(220, 220, 220))
        draw.text((4, y - 6), f"1e{decade}", fill="black")
    for frac in (0.0, 0.5, 1.0):
        x = MARGIN + plot_w * frac
        draw.text((x - 12, HEIGHT - MARGIN + 6), f"{int(max_step * frac)}", fill="black")
    colours = [(200, 40, 40), (40, 80, 200), (40, 160, 60)]
    for (name, values), colour in zip(series.items(), colours, strict=False):
        offset = len(steps) - len(values)
        points = [xy(s, v) for s, v in zip(steps[offset:], values, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((WIDTH - MARGIN - 60, MARGIN + 6 + 14 * list(series).index(name)), name, fill=colour)
    draw.text((MARGIN, 16), f"{title} (training step, log loss, 25-step median)", fill="black")
    image.save(out)
    return out
