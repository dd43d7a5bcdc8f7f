"""Draws the application icon, resources/icons/glide-studio.svg and .png, from one set of shapes.

The motif is the in-app icon (ui/icons.py app_icon): the starter scene's red circle, blue square and
yellow triangle on a dark tile, plus a spark for the text-guided edit. Run it again after changing a
shape: ``python packaging/make_icon.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256
PNG_SIZE = 256
SUPERSAMPLE = 4
TILE = (8, 8, 248, 248)
TILE_RADIUS = 52
TILE_TOP = (52, 58, 74)
TILE_BOTTOM = (30, 32, 41)
CIRCLE = ((98, 98), 50, (214, 52, 48))
SQUARE = ((128, 128, 214, 214), 8, (46, 86, 196))
TRIANGLE = (((50, 216), (96, 136), (136, 216)), (250, 200, 60))
SPARK_CENTRE = (192, 64)
SPARK_RADII = (34, 9)  # tip and waist of the four-pointed star
SPARK_COLOUR = (240, 244, 255)


def spark_points() -> list[tuple[float, float]]:
    """A four-pointed star: tips on the axes, waist points on the diagonals."""
    cx, cy = SPARK_CENTRE
    tip, waist = SPARK_RADII
    points = []
    for index in range(8):
        angle = np.pi / 4 * index - np.pi / 2
        radius = tip if index % 2 == 0 else waist
        points.append((round(cx + radius * np.cos(angle), 2), round(cy + radius * np.sin(angle), 2)))
    return points


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def svg_text() -> str:
    x0, y0, x1, y1 = TILE
    (cx, cy), radius, circle_colour = CIRCLE
    (sx0, sy0, sx1, sy1), square_radius, square_colour = SQUARE
    triangle, triangle_colour = TRIANGLE
    triangle_points = " ".join(f"{x},{y}" for x, y in triangle)
    spark = " ".join(f"{x},{y}" for x, y in spark_points())
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">
  <title>GLIDE Studio</title>
  <defs>
    <linearGradient id="tile" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="{_hex(TILE_TOP)}"/>
      <stop offset="1" stop-color="{_hex(TILE_BOTTOM)}"/>
    </linearGradient>
  </defs>
  <rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="{TILE_RADIUS}" fill="url(#tile)"/>
  <circle cx="{cx}" cy="{cy}" r="{radius}" fill="{_hex(circle_colour)}"/>
  <rect x="{sx0}" y="{sy0}" width="{sx1 - sx0}" height="{sy1 - sy0}" rx="{square_radius}" \
fill="{_hex(square_colour)}"/>
  <polygon points="{triangle_points}" fill="{_hex(triangle_colour)}"/>
  <polygon points="{spark}" fill="{_hex(SPARK_COLOUR)}"/>
</svg>
"""


def png_image(size: int = PNG_SIZE) -> Image.Image:
    """The same drawing rasterised with Pillow, drawn large and reduced for smooth edges."""
    big = size * SUPERSAMPLE
    scale = big / SIZE

    def scaled(*values: float) -> list[float]:
        return [value * scale for value in values]

    rows = np.linspace(0.0, 1.0, big)[:, None, None]
    gradient = (1 - rows) * np.array(TILE_TOP) + rows * np.array(TILE_BOTTOM)
    tile_fill = Image.fromarray(np.broadcast_to(gradient, (big, big, 3)).astype(np.uint8), "RGB")
    tile_mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(tile_mask).rounded_rectangle(scaled(*TILE), radius=TILE_RADIUS * scale, fill=255)
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    image.paste(tile_fill, (0, 0), tile_mask)

    draw = ImageDraw.Draw(image)
    (cx, cy), radius, circle_colour = CIRCLE
    draw.ellipse(scaled(cx - radius, cy - radius, cx + radius, cy + radius), fill=circle_colour)
    box, square_radius, square_colour = SQUARE
    draw.rounded_rectangle(scaled(*box), radius=square_radius * scale, fill=square_colour)
    triangle, triangle_colour = TRIANGLE
    draw.polygon([(x * scale, y * scale) for x, y in triangle], fill=triangle_colour)
    draw.polygon([(x * scale, y * scale) for x, y in spark_points()], fill=SPARK_COLOUR)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    icons = Path(__file__).resolve().parents[1] / "resources" / "icons"
    icons.mkdir(parents=True, exist_ok=True)
    (icons / "glide-studio.svg").write_text(svg_text(), encoding="utf-8")
    png_image().save(icons / "glide-studio.png", optimize=True)
    print(f"wrote {icons / 'glide-studio.svg'} and {icons / 'glide-studio.png'}")


if __name__ == "__main__":
    main()
