"""Scene specs of 1–3 coloured shapes and their 64×64 RGB rendering.

A scene is a list of :class:`SceneObject` (shape, colour, size, centre) on a light
grey background. Shapes are drawn with Pillow at 4× the size and reduced with a
box filter (anti-aliased, deterministic). Objects in a scene never overlap and
differ in (shape, colour), so a caption's phrase names exactly one object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SHAPES = ("circle", "square", "triangle", "star", "diamond")
COLOURS = {
    "red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215),
    "yellow": (230, 200, 30), "purple": (145, 60, 185), "orange": (240, 135, 25),
}
SIZES = {"small": 6.5, "large": 11.5}  # radius in pixels at 64×64
BACKGROUND = (232, 232, 232)
MIN_OFFSET = 8.0  # pixels: two objects differ by at least this much along the axis their relation names
_SUPER = 4


@dataclass(frozen=True)
class SceneObject:
    """One object: shape, colour and size names, centre ``(x, y)`` in pixels (y grows downwards)."""

    shape: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    def to_dict(self) -> dict:
        return asdict(self)


def random_scene(rng: np.random.Generator, count: int | None = None, tries: int = 200) -> list[SceneObject]:
    """1–3 non-overlapping objects with distinct (shape, colour), every pair separated along some axis."""
    count = int(rng.integers(1, 4)) if count is None else count
    while True:
        objects: list[SceneObject] = []
        for _ in range(tries):
            if len(objects) == count:
                break
            shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
            size = str(rng.choice(list(SIZES)))
            r = SIZES[size]
            x, y = (float(v) for v in rng.uniform(r + 1, IMAGE_SIZE - r - 1, size=2).round(1))
            candidate = SceneObject(shape, colour, size, x, y)
            if all(_compatible(candidate, other) for other in objects):
                objects.append(candidate)
        if len(objects) == count:
            return objects


def _compatible(a: SceneObject, b: SceneObject) -> bool:
    apart = np.hypot(a.x - b.x, a.y - b.y) > a.radius + b.radius + 2
    separated = max(abs(a.x - b.x), abs(a.y - b.y)) >= MIN_OFFSET
    return apart and separated and (a.shape, a.colour) != (b.shape, b.colour)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)]
    if shape == "triangle":
        angles = np.deg2rad([-90, 30, 150])
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]
    if shape == "star":
        angles = np.deg2rad(-90 + 36 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        return [(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, angles)]
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_scene(objects: list[SceneObject]) -> np.ndarray:
    """``(64, 64, 3)`` uint8 image of the scene."""
    big = IMAGE_SIZE * _SUPER
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        cx, cy, r = obj.x * _SUPER, obj.y * _SUPER, obj.radius * _SUPER
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(obj.shape, cx, cy, r), fill=fill)
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX), dtype=np.uint8)
