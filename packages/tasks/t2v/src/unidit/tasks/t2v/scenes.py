"""Procedural captioned clips of moving shapes: the embedded t2v data.

Text-to-video models are judged on whether a clip shows *what* the caption
names (object kind and colour) and *how* it moves.  The embedded stand-in
makes both checkable: every clip shows a primary object of one of
:data:`SHAPES`, painted in one of :data:`COLOURS`, doing one of
:data:`MOTIONS`; sometimes a smaller second object of another kind and colour
moves too; the background is plain, striped, checkered or a gradient in muted
tones so the saturated objects stand out.  The caption names the primary object
first ("a red triangle moves from left to right while a small blue circle
rises, on a striped background"), and :class:`ClipSpec` keeps its attributes
so a classifier can score generated clips (see ``classifier.py``).

Rendering is vectorised: each object is an implicit shape evaluated on a
2x supersampled coordinate grid for all frames at once, then averaged down
(anti-aliased edges), and composited over the background.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

NUM_FRAMES = 17  # 1 + 4k: a causal VAE with temporal compression 4 (or 8: 1 + 8*2) maps it to whole latent frames
SIZE = 64
SUPERSAMPLE = 2

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 100, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
MOTIONS: tuple[str, ...] = (
    "left_to_right", "right_to_left", "up", "down", "bouncing", "growing", "shrinking", "rotating",
)
SECONDARY_MOTIONS: tuple[str, ...] = ("still", "left_to_right", "right_to_left", "up", "down", "bouncing", "rotating")
BACKGROUNDS: tuple[str, ...] = ("plain", "stripes", "checker", "gradient")

_MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "left_to_right": ("moves from left to right", "slides to the right", "travels from the left to the right"),
    "right_to_left": ("moves from right to left", "slides to the left", "travels from the right to the left"),
    "up": ("moves up", "rises", "floats upward"),
    "down": ("moves down", "falls", "sinks downward"),
    "bouncing": ("bounces", "bounces up and down", "is bouncing"),
    "growing": ("grows", "gets bigger", "expands"),
    "shrinking": ("shrinks", "gets smaller", "contracts"),
    "rotating": ("rotates", "spins", "turns around"),
}
_BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("on a plain background", "on a dark background"),
    "stripes": ("on a striped background", "over stripes"),
    "checker": ("on a checkered background", "on a checkerboard"),
    "gradient": ("on a gradient background", "on a shaded background"),
}
# Sizes are pixels at SIZE 64. What tells the shapes apart has to survive the video VAE's 8x
# spatial compression: a square's corners reach past the circle of the same area by 0.2 of the
# radius, which at radii 10-13 (the v2 data) was 2-3 px, a third of a latent cell. There the VAE
# kept 0.78 of the shapes recognisable and circle vs square made 2-3.5% of the latent variance;
# at radii 14-17 (v3) 0.88 and about 5%, and t2v samples got shape right 0.55 of the time
# instead of 0.46 (README, t2v results).
PRIMARY_RADIUS = (14.0, 17.0)  # half the primary object's extent
SECONDARY_RADIUS = 9.0
GROWTH = (0.45, 1.2)  # radius factor at the start / end of "growing" (reversed for "shrinking")
TRAVEL = 0.54  # fraction of the frame a sliding / rising / falling object covers over the clip


@dataclass(frozen=True)
class ObjectSpec:
    """One object: kind, colour, motion and where it starts (fractions of the frame)."""

    shape: str
    colour: str
    motion: str
    radius: float  # pixels at SIZE 64
    x: float  # start centre, fraction of the width
    y: float  # start centre, fraction of the height (0 = top)
    angle: float  # start rotation, radians
    spin: float  # total rotation over the clip, radians (rotating only)


@dataclass(frozen=True)
class ClipSpec:
    """A whole clip: its primary object, an optional secondary one, and the background."""

    primary: ObjectSpec
    secondary: ObjectSpec | None
    background: str
    tones: tuple[tuple[int, int, int], tuple[int, int, int]]  # the background's two RGB tones

    @property
    def labels(self) -> tuple[int, int, int]:
        """(shape, colour, motion) class indices of the primary object."""
        p = self.primary
        return SHAPES.index(p.shape), COLOUR_NAMES.index(p.colour), MOTIONS.index(p.motion)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ClipSpec":
        secondary = ObjectSpec(**data["secondary"]) if data.get("secondary") else None
        tones = tuple(tuple(int(v) for v in tone) for tone in data["tones"])
        return cls(ObjectSpec(**data["primary"]), secondary, data["background"], tones)  # type: ignore[arg-type]


# ------------------------------------------------------------------- drawing specs
def allowed_motions(shape: str) -> tuple[str, ...]:
    """A circle looks the same at every angle, so it never 'rotates'."""
    return tuple(m for m in MOTIONS if not (shape == "circle" and m == "rotating"))


def random_clip_spec(
    rng: np.random.Generator,
    shape: str | None = None,
    colour: str | None = None,
    motion: str | None = None,
    two_objects_probability: float = 0.35,
) -> ClipSpec:
    """Draw a clip spec; the primary object's shape / colour / motion may be fixed."""
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    colour = colour or COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
    motions = allowed_motions(shape)
    if motion is None or motion not in motions:
        motion = motions[rng.integers(len(motions))]
    primary = _random_object(rng, shape, colour, motion, rng.uniform(*PRIMARY_RADIUS))
    secondary = None
    if rng.random() < two_objects_probability:
        shape2 = _pick_other(rng, SHAPES, shape)
        colour2 = _pick_other(rng, COLOUR_NAMES, colour)
        motions2 = tuple(m for m in SECONDARY_MOTIONS if not (shape2 == "circle" and m == "rotating"))
        secondary = _random_object(rng, shape2, colour2, motions2[rng.integers(len(motions2))], SECONDARY_RADIUS)
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = rng.integers(15, 70, size=3)  # muted, dark tones: the saturated objects stay visible
    other = np.clip(base + rng.integers(25, 45) * (1 if rng.random() < 0.5 else -1), 5, 100)
    tones = (tuple(int(v) for v in base), tuple(int(v) for v in other))
    return ClipSpec(primary, secondary, background, tones)  # type: ignore[arg-type]


def _pick_other(rng: np.random.Generator, options: tuple[str, ...], not_this: str) -> str:
    rest = [o for o in options if o != not_this]
    return rest[rng.integers(len(rest))]


def _random_object(rng: np.random.Generator, shape: str, colour: str, motion: str, radius: float) -> ObjectSpec:
    margin = 0.25  # a primary object reaches up to 17 px (0.27 of the frame) from its centre: keep it in view
    x, y = rng.uniform(margin, 1 - margin, size=2)
    if motion == "left_to_right":
        x = rng.uniform(0.2, 0.26)
    elif motion == "right_to_left":
        x = rng.uniform(0.74, 0.8)
    elif motion == "up":
        y = rng.uniform(0.74, 0.8)
    elif motion == "down":
        y = rng.uniform(0.2, 0.26)
    elif motion == "bouncing":
        y = rng.uniform(0.68, 0.76)  # the floor it bounces on
    spin = rng.uniform(np.pi / 3, 2 * np.pi / 3) * (1 if rng.random() < 0.5 else -1) if motion == "rotating" else 0.0
    # upright (angle 0: a flat-bottomed square, a triangle and a star pointing up) unless it rotates
    return ObjectSpec(shape, colour, motion, float(radius), float(x), float(y), 0.0, float(spin))


# ------------------------------------------------------------------- captions
def caption(spec: ClipSpec, rng: np.random.Generator | None = None) -> str:
    """Describe a clip, primary object first, e.g. "a red star spins while a small blue circle falls".

    With ``rng`` the wording varies (synonyms, an optional background phrase);
    without it the first phrase of each kind is used and the background is named.
    """
    pick = (lambda options: options[rng.integers(len(options))]) if rng is not None else (lambda o: o[0])
    p = spec.primary
    text = f"a {p.colour} {p.shape} {pick(_MOTION_PHRASES[p.motion])}"
    if spec.secondary is not None:
        s = spec.secondary
        if s.motion == "still":
            text += f" next to a small {s.colour} {s.shape}"
        else:
            text += f" while a small {s.colour} {s.shape} {pick(_MOTION_PHRASES[s.motion])}"
    if rng is None or rng.random() < 0.5:
        text += f" {pick(_BACKGROUND_PHRASES[spec.background])}"
    return text


# ------------------------------------------------------------------- rendering
def render_clip(spec: ClipSpec, num_frames: int = NUM_FRAMES, size: int = SIZE) -> np.ndarray:
    """Draw a clip as uint8 ``(F, H, W, 3)``; the secondary object lies under the primary one."""
    clip = np.broadcast_to(_background(spec, size), (num_frames, size, size, 3)).astype(np.float32)  # (F, H, W, 3)
    for obj in (spec.secondary, spec.primary):
        if obj is None:
            continue
        coverage = _object_coverage(obj, num_frames, size)[..., None]  # (F, H, W, 1)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float32)  # (3,)
        clip = clip * (1.0 - coverage) + colour * coverage
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)


def _background(spec: ClipSpec, size: int) -> np.ndarray:
    """The static background, float32 ``(H, W, 3)``."""
    a, b = (np.asarray(tone, dtype=np.float32) for tone in spec.tones)  # (3,)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)  # (H, W)
    if spec.background == "plain":
        mix = np.zeros_like(rows)
    elif spec.background == "stripes":
        mix = ((cols // 8) % 2).astype(np.float32)
    elif spec.background == "checker":
        mix = (((rows // 8) + (cols // 8)) % 2).astype(np.float32)
    else:  # gradient, top to bottom
        mix = rows / (size - 1)
    return a * (1.0 - mix[..., None]) + b * mix[..., None]


def trajectory(obj: ObjectSpec, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre ``x, y`` (fractions), radius factor and angle, each ``(F,)``."""
    t = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)  # (F,)
    x = np.full_like(t, obj.x)
    y = np.full_like(t, obj.y)
    scale = np.ones_like(t)
    angle = np.full_like(t, obj.angle)
    if obj.motion == "left_to_right":
        x = obj.x + TRAVEL * t
    elif obj.motion == "right_to_left":
        x = obj.x - TRAVEL * t
    elif obj.motion == "up":
        y = obj.y - TRAVEL * t
    elif obj.motion == "down":
        y = obj.y + TRAVEL * t
    elif obj.motion == "bouncing":  # two parabolic hops off the floor at obj.y
        y = obj.y - 0.45 * np.abs(np.sin(2.0 * np.pi * t))
    elif obj.motion == "growing":
        scale = GROWTH[0] + (GROWTH[1] - GROWTH[0]) * t
    elif obj.motion == "shrinking":
        scale = GROWTH[1] - (GROWTH[1] - GROWTH[0]) * t
    elif obj.motion == "rotating":
        angle = obj.angle + obj.spin * t
    return x, y, scale, angle


def _object_coverage(obj: ObjectSpec, num_frames: int, size: int) -> np.ndarray:
    """Fraction of each pixel the object covers, float32 ``(F, H, W)``."""
    fine = size * SUPERSAMPLE
    grid = (np.arange(fine, dtype=np.float32) + 0.5) / SUPERSAMPLE  # pixel coordinates of sub-samples (fine,)
    x, y, scale, angle = trajectory(obj, num_frames)  # (F,) each
    radius = obj.radius * size / SIZE * scale  # (F,) pixels
    cx, cy = x * size, y * size  # (F,)
    dx = (grid[None, None, :] - cx[:, None, None]) / radius[:, None, None]  # (F, 1, fine)
    dy = (grid[None, :, None] - cy[:, None, None]) / radius[:, None, None]  # (F, fine, 1)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = cos * dx + sin * dy  # (F, fine, fine): object frame, unit radius
    v = -sin * dx + cos * dy
    inside = shape_mask(obj.shape, u, v).astype(np.float32)  # (F, fine, fine)
    f = num_frames
    return inside.reshape(f, size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(2, 4))  # (F, H, W)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether object-frame points ``(u, v)`` (unit circumradius, v down) lie inside ``shape``."""
    if shape == "circle":
        return u * u + v * v <= 0.85**2  # a little smaller: equal visual weight with the polygons
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if shape == "triangle":  # equilateral, apex up (v < 0) at angle 0
        return _regular_polygon(u, v, sides=3)
    if shape == "star":  # five points, inner radius 0.45
        theta = np.arctan2(u, -v)  # 0 at the top point
        sector = 2.0 * np.pi / 5.0
        phase = np.abs(np.mod(theta, sector) / sector - 0.5) * 2.0  # 1 at a point, 0 half-way between
        boundary = 0.45 + 0.55 * phase**1.5
        return np.sqrt(u * u + v * v) <= boundary
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _regular_polygon(u: np.ndarray, v: np.ndarray, sides: int) -> np.ndarray:
    """Inside a regular polygon of circumradius 1 with a vertex straight up."""
    inradius = np.cos(np.pi / sides)
    inside = np.ones(np.broadcast(u, v).shape, dtype=bool)
    for k in range(sides):  # one half-plane per edge (3 edges, not a per-pixel loop)
        normal = np.pi / sides + 2.0 * np.pi * k / sides  # edge normal angle, clockwise from up
        inside &= (u * np.sin(normal) - v * np.cos(normal)) <= inradius
    return inside
