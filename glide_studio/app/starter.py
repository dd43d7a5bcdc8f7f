"""The starter scene: a small shapes picture so a first-time user can try an edit at once."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

STARTER_SIZE = 256
STARTER_CAPTION = "a red circle above a blue square"


def starter_scene(size: int = STARTER_SIZE) -> np.ndarray:
    """Coloured shapes on a soft two-tone background, drawn the same way every time."""
    # Drawn at 4x and reduced, for smooth edges.
    canvas_size = size * 4
    scale = canvas_size / 256
    image = Image.new("RGB", (canvas_size, canvas_size), (233, 226, 208))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(170 * scale), canvas_size, canvas_size), fill=(150, 178, 120))
    draw.ellipse(_box(48, 30, 132, 114, scale), fill=(214, 52, 48))
    draw.rectangle(_box(52, 128, 128, 204, scale), fill=(46, 86, 196))
    draw.polygon(
        [(188 * scale, 70 * scale), (232 * scale, 150 * scale), (144 * scale, 150 * scale)],
        fill=(246, 190, 40),
    )
    draw.ellipse(_box(166, 178, 222, 234, scale), fill=(120, 64, 160))
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def _box(x0: float, y0: float, x1: float, y1: float, scale: float) -> tuple[int, int, int, int]:
    return int(x0 * scale), int(y0 * scale), int(x1 * scale), int(y1 * scale)
