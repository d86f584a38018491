"""Procedural primitive shapes with captions: the embedded shape3d data.

DiT-3D (Mo et al. 2023) trains on ShapeNet clouds from PointFlow's PC15k
(Yang et al. 2019): 2048 points sampled uniformly over a shape's surface.  The
embedded stand-in keeps that format but draws the shapes from eight primitive
kinds with a few attributes each, so a text-to-shape model has something to be
faithful to without downloading anything:

* ``size``: small or large (large fits about ``[-0.9, 0.9]^3``, small half);
* ``proportion``: regular, tall thin or short wide (torus: thin or thick tube);
* ``orientation``: upright, on its side or upside down, where it means
  something for the kind (a sphere has none, a cylinder is never upside down).

Frame: y is up; every cloud is centred on the origin (bounding-box centre) and
turned by a small random yaw about y.  Points are area-weighted uniform samples
of a triangle mesh; rotations and uniform scaling keep that density uniform.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

KINDS: tuple[str, ...] = (
    "sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule", "hemisphere",
)
SIZES: tuple[str, ...] = ("small", "large")
UPRIGHT, SIDE, UPSIDE_DOWN = "upright", "on its side", "upside down"

# Allowed proportions and orientations per kind; the first entry is the default.
PROPORTIONS: dict[str, tuple[str, ...]] = {
    "sphere": ("regular",),
    "cube": ("regular", "tall thin", "short wide"),
    "cylinder": ("regular", "tall thin", "short wide"),
    "cone": ("regular", "tall thin", "short wide"),
    "torus": ("regular", "thin", "thick"),
    "pyramid": ("regular", "tall thin", "short wide"),
    "capsule": ("regular", "tall thin"),
    "hemisphere": ("regular", "short wide"),
}
ORIENTATIONS: dict[str, tuple[str, ...]] = {
    "sphere": (UPRIGHT,),
    "cube": (UPRIGHT, SIDE),  # only meaningful when not regular, see allowed_orientations
    "cylinder": (UPRIGHT, SIDE),
    "cone": (UPRIGHT, SIDE, UPSIDE_DOWN),
    "torus": (UPRIGHT, SIDE),
    "pyramid": (UPRIGHT, SIDE, UPSIDE_DOWN),
    "capsule": (UPRIGHT, SIDE),
    "hemisphere": (UPRIGHT, SIDE, UPSIDE_DOWN),
}
# Caption phrases; a torus lies flat when "upright" (axis vertical).
_ORIENTATION_PHRASES: dict[str, tuple[str, ...]] = {
    UPRIGHT: ("standing upright", "upright"),
    SIDE: ("lying on its side", "on its side"),
    UPSIDE_DOWN: ("upside down", "turned upside down"),
}
_TORUS_PHRASES = {UPRIGHT: ("lying flat", "lying flat"), SIDE: ("standing on its edge", "on its edge")}
_SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
HALF_EXTENT = {"large": 0.9, "small": 0.45}
MAX_YAW_DEGREES = 30.0


@dataclass(frozen=True)
class ShapeSpec:
    """What to draw: one primitive kind and its attributes."""

    kind: str
    size: str = "large"
    proportion: str = "regular"
    orientation: str = UPRIGHT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected one of {SIZES}")
        if self.proportion not in PROPORTIONS[self.kind]:
            raise ValueError(f"{self.kind} proportion must be one of {PROPORTIONS[self.kind]}, got {self.proportion!r}")
        allowed = allowed_orientations(self.kind, self.proportion)
        if self.orientation not in allowed:
            raise ValueError(
                f"{self.kind} ({self.proportion}) orientation must be one of {allowed}, got {self.orientation!r}"
            )

    @property
    def label(self) -> int:
        return KINDS.index(self.kind)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def allowed_orientations(kind: str, proportion: str) -> tuple[str, ...]:
    """Orientations that change the shape (a regular cube looks the same on any face)."""
    if kind == "cube" and proportion == "regular":
        return (UPRIGHT,)
    return ORIENTATIONS[kind]


def random_spec(rng: np.random.Generator, kind: str | None = None) -> ShapeSpec:
    """Draw a spec: the kind (unless given), then each attribute, uniformly."""
    kind = kind if kind is not None else KINDS[rng.integers(len(KINDS))]
    size = SIZES[rng.integers(len(SIZES))]
    proportions = PROPORTIONS[kind]
    proportion = proportions[rng.integers(len(proportions))]
    orientations = allowed_orientations(kind, proportion)
    orientation = orientations[rng.integers(len(orientations))]
    return ShapeSpec(kind, size, proportion, orientation)


def caption(spec: ShapeSpec, rng: np.random.Generator | None = None) -> str:
    """Describe a spec in English, e.g. "a large tall thin cylinder lying on its side".

    With ``rng`` the wording varies (synonyms, comma or relative clause, e.g.
    "a small cone, upside down"); without it the first form is used.
    """
    pick = (lambda options: options[rng.integers(len(options))]) if rng is not None else (lambda o: o[0])
    size = pick(_SIZE_WORDS[spec.size])
    words = [] if spec.proportion == "regular" else spec.proportion.split()
    orientation = ""
    if len(allowed_orientations(spec.kind, spec.proportion)) > 1:
        phrases = _TORUS_PHRASES if spec.kind == "torus" else _ORIENTATION_PHRASES
        orientation = pick(phrases[spec.orientation])
    form = pick((0, 1, 2)) if rng is not None else 0
    if form == 2:  # "a cone that is small and short and wide, upside down"
        qualities = " and ".join([size, *words])
        text = f"a {spec.kind} that is {qualities}"
        return f"{text}, {orientation}" if orientation else text
    text = " ".join(["a", size, *words, spec.kind])
    if not orientation:
        return text
    return f"{text}, {orientation}" if form == 1 else f"{text} {orientation}"


# ----------------------------------------------------------------- geometry
# (x, y, z) @ M = (x, z, -y): trimesh's z axis becomes our up axis y.
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@functools.lru_cache(maxsize=None)
def _canonical_mesh(kind: str, proportion: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upright mesh of a kind: ``vertices (V, 3)``, ``triangles (F, 3, 3)``, ``cumulative areas (F,)``."""
    import trimesh

    tall, wide = proportion == "tall thin", proportion == "short wide"
    z_up = True  # trimesh builds solids of revolution along z
    if kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3)
    elif kind == "cube":
        extents = (0.9, 2.0, 0.9) if tall else (2.0, 0.7, 2.0) if wide else (2.0, 2.0, 2.0)
        mesh, z_up = trimesh.creation.box(extents=extents), False
    elif kind == "cylinder":
        radius, height = (0.4, 2.0) if tall else (1.0, 0.6) if wide else (1.0, 2.0)
        mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=48)
    elif kind == "cone":
        radius, height = (0.45, 2.0) if tall else (1.0, 0.7) if wide else (1.0, 1.6)
        mesh = trimesh.creation.cone(radius=radius, height=height, sections=48)
    elif kind == "torus":
        minor = {"regular": 0.35, "thin": 0.15, "thick": 0.6}[proportion]
        mesh = trimesh.creation.torus(1.0, minor, major_sections=48, minor_sections=24)
    elif kind == "pyramid":
        half, height = (0.45, 2.0) if tall else (1.0, 0.7) if wide else (1.0, 1.6)
        mesh, z_up = _square_pyramid(half, height), False
    elif kind == "capsule":
        radius, length = (0.3, 1.4) if tall else (0.5, 1.0)
        mesh = trimesh.creation.capsule(height=length, radius=radius, count=[24, 24])
    elif kind == "hemisphere":
        height = 0.5 if wide else 1.0
        angle = np.linspace(0.0, np.pi / 2, 17)
        profile = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(angle), height * np.sin(angle)], 1)])
        mesh = trimesh.creation.revolve(profile, sections=48)
    else:  # pragma: no cover - ShapeSpec validates kinds
        raise ValueError(kind)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)  # (V, 3)
    if z_up:
        vertices = vertices @ _Z_UP_TO_Y_UP
    triangles = vertices[np.asarray(mesh.faces)]  # (F, 3, 3)
    areas = 0.5 * np.linalg.norm(
        np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1
    )  # (F,)
    return vertices, triangles, np.cumsum(areas)


def _square_pyramid(half: float, height: float):
    import trimesh

    vertices = np.array(
        [[-half, 0, -half], [half, 0, -half], [half, 0, half], [-half, 0, half], [0, height, 0]], dtype=float
    )
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 4, 1], [1, 4, 2], [2, 4, 3], [3, 4, 0]])
    return trimesh.Trimesh(vertices, faces, process=False)


def _rotation(axis: str, degrees: float) -> np.ndarray:
    """Row-vector rotation matrix (apply as ``points @ R``)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "x":
        matrix = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    elif axis == "y":
        matrix = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    else:
        matrix = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return matrix.T


_ORIENT = {UPRIGHT: np.eye(3), SIDE: _rotation("z", 90.0), UPSIDE_DOWN: _rotation("x", 180.0)}


def sample_points(spec: ShapeSpec, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Area-weighted uniform samples of the spec's surface, ``(num_points, 3)`` float32.

    The shape is oriented, yawed by up to +-30 degrees about y, centred on its
    bounding box and scaled so its largest half-extent is 0.9 (large) or 0.45
    (small), times a size jitter in [0.9, 1].
    """
    vertices, triangles, cumulative = _canonical_mesh(spec.kind, spec.proportion)
    rotation = _ORIENT[spec.orientation] @ _rotation("y", rng.uniform(-MAX_YAW_DEGREES, MAX_YAW_DEGREES))
    turned = vertices @ rotation  # (V, 3)
    low, high = turned.min(axis=0), turned.max(axis=0)
    centre, half = (low + high) / 2.0, (high - low).max() / 2.0
    scale = HALF_EXTENT[spec.size] * rng.uniform(0.9, 1.0) / half

    faces = np.searchsorted(cumulative, rng.random(num_points) * cumulative[-1], side="right")  # (N,)
    faces = np.minimum(faces, len(triangles) - 1)
    u, v = rng.random(num_points), rng.random(num_points)  # (N,)
    flip = u + v > 1.0
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    tri = triangles[faces]  # (N, 3, 3)
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])  # (N, 3)
    return ((points @ rotation - centre) * scale).astype(np.float32)
