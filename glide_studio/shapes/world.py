"""The shapes world: seeded scenes of coloured shapes on backgrounds, and their anti-aliased rendering.

Geometry lives in normalised coordinates (0..1, y pointing down), so one scene renders consistently at
any resolution. Rendering is a pure function of the scene: backgrounds carry their own texture seed.
Object coverage is drawn with Pillow at a supersampled resolution and box-averaged, so an object's
pixels are `background * (1 - coverage) + colour * coverage`, which is what the oracle inverts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw


class ShapesError(ValueError):
    """Bad input to the shapes world (unknown names, wrong image sizes, impossible requests)."""


# Well separated in RGB (minimum pairwise distance ~85) so nearest-colour classification is exact
# even on textured backgrounds and at anti-aliased edges.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 220, 30),
    "green": (40, 165, 55),
    "cyan": (30, 200, 215),
    "blue": (35, 70, 215),
    "purple": (135, 50, 175),
    "pink": (245, 125, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
# Gray is a background colour only; the oracle still knows it.
BACKGROUND_ONLY_COLOURS: dict[str, tuple[int, int, int]] = {"gray": (128, 128, 128)}
PALETTE: dict[str, tuple[int, int, int]] = {**COLOURS, **BACKGROUND_ONLY_COLOURS}
OBJECT_COLOURS: tuple[str, ...] = tuple(COLOURS)
BACKGROUND_COLOURS: tuple[str, ...] = tuple(PALETTE)

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUND_STYLES: tuple[str, ...] = ("plain", "gradient", "stripes", "checker", "noise")

# Radius ranges (fraction of the image side). Small at 64 px is >= 7 px.
SIZE_RADIUS: dict[str, tuple[float, float]] = {"small": (0.11, 0.14), "large": (0.18, 0.22)}
SIZE_THRESHOLD = 0.16
# The circumscribed radius of each outline, in units of the object's radius.
BOUNDING_FACTOR: dict[str, float] = {
    "circle": 1.0,
    "square": 0.85 * math.sqrt(2.0),
    "diamond": 1.15,
    "triangle": 1.2,
    "star": 1.25,
}
STAR_INNER_RATIO = 0.5
MAX_ROTATION_DEGREES = 10.0
TEXTURE_AMPLITUDE = (8.0, 16.0)


@dataclass(frozen=True)
class ShapeObject:
    kind: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    angle: float = 0.0  # degrees, small jitter; a diamond is a square at 45 degrees, not a rotation

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLOURS[self.colour]

    @property
    def bounding_radius(self) -> float:
        return self.radius * BOUNDING_FACTOR[self.kind]


@dataclass(frozen=True)
class Background:
    colour: str
    style: str = "plain"
    seed: int = 0

    @property
    def rgb(self) -> tuple[int, int, int]:
        return PALETTE[self.colour]


@dataclass(frozen=True)
class Scene:
    background: Background
    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)


def outline(obj: ShapeObject, size: int) -> list[tuple[float, float]]:
    """Polygon vertices of an object in continuous pixel coordinates of a size x size image."""
    cx, cy, r = obj.cx * size, obj.cy * size, obj.radius * size
    rot = math.radians(obj.angle)
    if obj.kind == "circle":
        n = max(48, int(2 * math.pi * r))
        pts = [(r, 2 * math.pi * k / n) for k in range(n)]
    elif obj.kind == "square":
        pts = [(BOUNDING_FACTOR["square"] * r, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif obj.kind == "diamond":
        pts = [(BOUNDING_FACTOR["diamond"] * r, k * math.pi / 2) for k in range(4)]
    elif obj.kind == "triangle":
        pts = [(BOUNDING_FACTOR["triangle"] * r, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif obj.kind == "star":
        outer = BOUNDING_FACTOR["star"] * r
        pts = [
            (outer if k % 2 == 0 else outer * STAR_INNER_RATIO, -math.pi / 2 + k * math.pi / 5)
            for k in range(10)
        ]
    else:
        raise ShapesError(f"unknown shape kind {obj.kind!r}; expected one of {', '.join(KINDS)}")
    return [(cx + rad * math.cos(a + rot), cy + rad * math.sin(a + rot)) for rad, a in pts]


def object_coverage(obj: ShapeObject, size: int, supersample: int = 4) -> tuple[int, int, np.ndarray]:
    """(top, left, coverage) of one object: coverage in 0..1 over a crop of the size x size image."""
    pts = outline(obj, size)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0 = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    x1, y1 = min(size, math.ceil(max(xs)) + 1), min(size, math.ceil(max(ys)) + 1)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, np.zeros((0, 0), np.float32)
    s = supersample
    canvas = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    # Pillow samples at integer coordinates, i.e. at supersampled pixel centres minus half a pixel.
    poly = [((x - x0) * s - 0.5, (y - y0) * s - 0.5) for x, y in pts]
    ImageDraw.Draw(canvas).polygon(poly, fill=255)
    if s > 1:
        canvas = canvas.reduce(s)
    return y0, x0, np.asarray(canvas, dtype=np.float32) / 255.0


def object_alpha(scene: Scene, index: int, size: int, supersample: int = 4) -> np.ndarray:
    """Full-size coverage (float32 0..1) of object `index`, ignoring occlusion by later objects."""
    if not 0 <= index < len(scene.objects):
        raise ShapesError(f"object index {index} out of range for a scene of {len(scene.objects)} objects")
    alpha = np.zeros((size, size), np.float32)
    top, left, cov = object_coverage(scene.objects[index], size, supersample)
    alpha[top : top + cov.shape[0], left : left + cov.shape[1]] = cov
    return alpha


def object_mask(scene: Scene, index: int, size: int) -> np.ndarray:
    """Bool mask of the pixels that are mostly covered by object `index`."""
    return object_alpha(scene, index, size) >= 0.5


def _background_shading(bg: Background, size: int) -> np.ndarray:
    """Additive brightness texture (size x size float32), a function of continuous coordinates."""
    if bg.style == "plain":
        return np.zeros((size, size), np.float32)
    rng = np.random.default_rng(bg.seed)
    amp = rng.uniform(*TEXTURE_AMPLITUDE)
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = u[None, :], u[:, None]
    theta = rng.uniform(0, 2 * math.pi)
    if bg.style == "gradient":
        shade = 2 * ((x - 0.5) * math.cos(theta) + (y - 0.5) * math.sin(theta))
    elif bg.style == "stripes":
        freq, phase = rng.uniform(3.0, 6.0), rng.uniform(0, 2 * math.pi)
        t = x * math.cos(theta) + y * math.sin(theta)
        shade = np.tanh(3 * np.sin(2 * math.pi * freq * t + phase))
    elif bg.style == "checker":
        freq = rng.uniform(2.5, 5.0)
        phx, phy = rng.uniform(0, 2 * math.pi, size=2)
        shade = np.tanh(3 * np.sin(2 * math.pi * freq * x + phx)) * np.tanh(3 * np.sin(2 * math.pi * freq * y + phy))
    elif bg.style == "noise":
        grid = rng.uniform(-1, 1, size=(5, 5)).astype(np.float32)
        shade = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC))
        shade = np.clip(shade, -1, 1)
    else:
        raise ShapesError(f"unknown background style {bg.style!r}; expected one of {', '.join(BACKGROUND_STYLES)}")
    return (amp * shade).astype(np.float32)


def render_float(scene: Scene, size: int = 256, supersample: int = 4) -> np.ndarray:
    """The scene as float32 HxWx3 in 0..255 (unrounded, for exact downsampling)."""
    if size < 8:
        raise ShapesError(f"render size must be at least 8 pixels, got {size}")
    bg = scene.background
    if bg.colour not in PALETTE:
        raise ShapesError(f"unknown background colour {bg.colour!r}")
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.asarray(bg.rgb, np.float32)
    img += _background_shading(bg, size)[:, :, None]
    for obj in scene.objects:
        if obj.colour not in COLOURS:
            raise ShapesError(f"unknown object colour {obj.colour!r}")
        top, left, cov = object_coverage(obj, size, supersample)
        if cov.size == 0:
            continue
        region = img[top : top + cov.shape[0], left : left + cov.shape[1]]
        a = cov[:, :, None]
        region *= 1.0 - a
        region += a * np.asarray(obj.rgb, np.float32)
    return np.clip(img, 0, 255)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.rint(img).astype(np.uint8)


def _box_reduce(img: np.ndarray, factor: int) -> np.ndarray:
    h, w, c = img.shape
    return img.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def render(scene: Scene, size: int = 256, supersample: int = 4) -> np.ndarray:
    """The scene as uint8 HxWx3, anti-aliased."""
    return _to_uint8(render_float(scene, size, supersample))


def render_pair(scene: Scene, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(64 px, 256 px) uint8 renders; the 64 px image is the 256 px render box-filtered by 4."""
    big = render_float(scene, 256, supersample)
    return _to_uint8(_box_reduce(big, 4)), _to_uint8(big)


def render_64(scene: Scene) -> np.ndarray:
    """The 64 px training image: a 256 px render (2x supersampled) box-filtered to 64 px."""
    return _to_uint8(_box_reduce(render_float(scene, 256, supersample=2), 4))


def _sample_object(
    rng: np.random.Generator,
    colour: str,
    kinds: tuple[str, ...],
    placed: list[ShapeObject],
    rotate: bool,
    gap: float,
) -> ShapeObject | None:
    kind = kinds[rng.integers(len(kinds))]
    angle = float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)) if rotate else 0.0
    for attempt in range(40):
        # Large objects crowd busy scenes; after a few failures fall back to small ones.
        size = SIZES[rng.integers(2)] if attempt < 20 else "small"
        radius = float(rng.uniform(*SIZE_RADIUS[size]))
        bound = radius * BOUNDING_FACTOR[kind]
        margin = bound + 0.02
        cx, cy = (float(v) for v in rng.uniform(margin, 1 - margin, size=2))
        if all(math.hypot(cx - o.cx, cy - o.cy) > bound + o.bounding_radius + gap for o in placed):
            return ShapeObject(kind, colour, size, cx, cy, radius, angle)
    return None


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    kinds: tuple[str, ...] = KINDS,
    styles: tuple[str, ...] = BACKGROUND_STYLES,
    rotate: bool = True,
    gap: float = 0.04,
) -> Scene:
    """A random scene: 1-3 non-overlapping objects (or `n_objects`) on a plain or textured background.

    Objects never share the background's colour; objects in one scene have distinct colours.
    """
    if n_objects is not None and not 0 <= n_objects <= 4:
        raise ShapesError(f"n_objects must be between 0 and 4, got {n_objects}")
    unknown = [k for k in kinds if k not in KINDS] + [s for s in styles if s not in BACKGROUND_STYLES]
    if unknown or not kinds or not styles:
        raise ShapesError(f"unknown or empty kinds/styles: {unknown or 'empty'}")
    if n_objects is None:
        n_objects = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    bg_colour = BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))]
    style = styles[rng.integers(len(styles))]
    background = Background(bg_colour, style, int(rng.integers(2**31)))
    candidates = [c for c in OBJECT_COLOURS if c != bg_colour]
    colours = [candidates[i] for i in rng.permutation(len(candidates))[:n_objects]]
    placed: list[ShapeObject] = []
    for colour in colours:
        obj = _sample_object(rng, colour, kinds, placed, rotate, gap)
        if obj is not None:
            placed.append(obj)
    return Scene(background, tuple(placed))


def sample_scenes(seed: int, count: int, **kwargs) -> list[Scene]:
    """`count` scenes from one seed (the same seed always gives the same list)."""
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, **kwargs) for _ in range(count)]
