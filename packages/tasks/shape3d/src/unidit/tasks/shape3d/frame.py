"""The shape3d training frame, and the transforms between a file's raw units and it.

The embedded primitives (:mod:`unidit.tasks.shape3d.primitives`) are made in a
fixed *training frame*: each cloud is centred at its bounding-box centre and
scaled so its largest half-extent is 0.9 (large shapes) or 0.45 (small ones).
The model starts sampling from unit-variance noise around the origin, so real
clouds must be brought into that frame before training or completion, and
generated clouds taken back out of it to be written in the data's own units.

Two conventions exist in the point-cloud generation literature, both in
PointFlow's ShapeNet PC15k loader (Yang et al. 2019), which PVD (Zhou et al.
2021) and DiT-3D (Mo et al. 2023) reuse:

* **dataset statistics** (PointFlow's default, used by PVD for PC15k): one mean
  ``(3,)`` and one standard deviation over all points of the training split,
  applied unchanged to val / test;
* **per shape** (PointFlow's ``normalize_per_shape``): each cloud by its own
  mean and standard deviation.

unidit uses

* :meth:`ShapeFrames.fit` (dataset statistics) for training data: one scale
  for the whole dataset, so the relative sizes of its shapes survive ("a large
  chair" stays larger than "a small chair").  PC15k fits it on its train split
  and keeps it for val / test, like PointFlow; a mesh folder fits it on all its
  shapes, as it is split only after loading.  Unlike PointFlow each
  cloud is centred at its *own* bounding-box centre (not at a dataset mean),
  because the embedded shapes are, and the scale maps the 95th percentile of
  the clouds' largest half-extents (not a standard deviation) to 0.9, the
  largest half-extent of the embedded "large" shapes: the 95th percentile of
  the embedded set itself is 0.9 within a few per cent, so the embedded data is
  already (nearly) in the frame this gives, and a percentile rather than the
  maximum keeps one oversized or badly scaled shape from shrinking all others;
* :meth:`ShapeFrame.fit` (per shape) for a single cloud with no dataset around
  it, e.g. the partial cloud given to :func:`complete_in_input_frame`: there is
  no dataset scale to share, and the input's units are arbitrary;
* nothing for the embedded data, made in the frame (identity frames).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from unidit.tasks.shape3d.primitives import HALF_EXTENT

# Largest half-extent of the embedded "large" shapes: 0.9.
TRAINING_HALF_EXTENT = HALF_EXTENT["large"]
# Percentile of the clouds' largest half-extents that ShapeFrames.fit maps to the target.
SCALE_QUANTILE = 0.95


@dataclass(frozen=True, eq=False)
class ShapeFrame:
    """One cloud's transform into the training frame: ``frame = (raw - centre) * scale``.

    Attributes:
        centre: ``(3,)`` float64, the raw-unit point that becomes the origin.
        scale: training-frame units per raw unit (positive, finite).

    :meth:`to_frame` and :meth:`from_frame` take ``(..., 3)`` arrays (``(N, 3)``
    one cloud, ``(B, N, 3)`` several clouds in this same frame) and are exact
    inverses up to float rounding; they compute and return float64.
    """

    centre: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        centre = np.array(self.centre, dtype=np.float64)  # (3,), a private copy
        if centre.shape != (3,) or not np.isfinite(centre).all():
            raise ValueError(f"centre must be 3 finite numbers, got {self.centre!r}")
        _check_scale(self.scale)
        centre.setflags(write=False)
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "scale", float(self.scale))

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Raw units -> training frame, ``(..., 3)`` float64."""
        return (_as_points(points) - self.centre) * self.scale

    def from_frame(self, points: np.ndarray) -> np.ndarray:
        """Training frame -> raw units, ``(..., 3)`` float64."""
        return _as_points(points) / self.scale + self.centre

    @classmethod
    def fit(cls, points: np.ndarray, target: float = TRAINING_HALF_EXTENT) -> ShapeFrame:
        """Per-shape frame (PointFlow's ``normalize_per_shape``, with a bounding box).

        The ``(N, 3)`` cloud's bounding-box centre goes to the origin and its
        largest half-extent becomes ``target`` (default 0.9, the embedded large
        shapes).
        """
        centre, half = _bounding_boxes(_as_points(points)[None])  # (1, 3), (1,)
        return cls(centre[0], target / _check_extent(float(half[0]), "the cloud"))


@dataclass(frozen=True, eq=False)
class ShapeFrames:
    """The frames of a dataset's clouds: own bounding-box centres, one shared scale.

    Attributes:
        centres: ``(M, 3)`` float64, cloud ``i``'s raw-unit bounding-box centre.
        scale: training-frame units per raw unit, the same for every cloud.

    ``frames[i]`` is cloud ``i``'s :class:`ShapeFrame`; :meth:`to_frame` and
    :meth:`from_frame` map all ``M`` clouds ``(M, N, 3)`` at once.
    """

    centres: np.ndarray
    scale: float

    def __post_init__(self) -> None:
        centres = np.array(self.centres, dtype=np.float64)  # (M, 3), a private copy
        if centres.ndim != 2 or centres.shape[1] != 3 or not np.isfinite(centres).all():
            raise ValueError(f"centres must be a finite (M, 3) array, got shape {centres.shape}")
        _check_scale(self.scale)
        centres.setflags(write=False)
        object.__setattr__(self, "centres", centres)
        object.__setattr__(self, "scale", float(self.scale))

    def __len__(self) -> int:
        return len(self.centres)

    def __getitem__(self, index: int) -> ShapeFrame:
        return ShapeFrame(self.centres[index], self.scale)

    def subset(self, index) -> ShapeFrames:
        """The frames at ``index`` (an int array), in that order."""
        return ShapeFrames(self.centres[np.asarray(index, dtype=np.int64)], self.scale)

    def shared(self) -> ShapeFrame:
        """A frame for clouds that belong to no stored shape (generated from a caption):
        the dataset scale, centred at the mean of the clouds' centres."""
        centre = self.centres.mean(axis=0) if len(self) else np.zeros(3)  # (3,)
        return ShapeFrame(centre, self.scale)

    def to_frame(self, clouds: np.ndarray) -> np.ndarray:
        """Raw ``(M, N, 3)`` -> training frame, float64; cloud ``i`` by frame ``i``."""
        return (self._check_clouds(clouds) - self.centres[:, None]) * self.scale

    def from_frame(self, clouds: np.ndarray) -> np.ndarray:
        """Training frame ``(M, N, 3)`` -> raw units, float64; cloud ``i`` by frame ``i``."""
        return self._check_clouds(clouds) / self.scale + self.centres[:, None]

    def _check_clouds(self, clouds: np.ndarray) -> np.ndarray:
        clouds = _as_points(clouds)
        if clouds.ndim != 3 or len(clouds) != len(self):
            raise ValueError(f"expected {len(self)} clouds of shape (N, 3), got an array of shape {clouds.shape}")
        return clouds

    @classmethod
    def identity(cls, count: int) -> ShapeFrames:
        """``count`` clouds already in the training frame (the embedded data)."""
        return cls(np.zeros((count, 3)), 1.0)

    @classmethod
    def fit(
        cls,
        clouds: np.ndarray,
        target: float = TRAINING_HALF_EXTENT,
        quantile: float = SCALE_QUANTILE,
        scale: float | None = None,
    ) -> ShapeFrames:
        """Dataset-statistics frames (PointFlow's default normalisation, with bounding boxes).

        Each of the ``(M, N, 3)`` clouds is centred at its own bounding-box
        centre; the one scale maps the ``quantile`` (default 0.95, numpy's
        linear interpolation) of the clouds' largest half-extents to ``target``.
        Pass ``scale`` (e.g. the training split's) to compute only the centres.
        """
        centres, halves = _bounding_boxes(_as_points(clouds))  # (M, 3), (M,)
        if scale is None:
            if not len(halves):
                raise ValueError("no clouds to compute a dataset scale from")
            spread = _check_extent(float(np.quantile(halves, quantile)), f"the {quantile:.0%} percentile cloud")
            scale = target / spread
        return cls(centres, scale)


def complete_in_input_frame(
    sample: Callable[[np.ndarray], np.ndarray | torch.Tensor],
    partial_points: np.ndarray,
    target: float = TRAINING_HALF_EXTENT,
) -> np.ndarray:
    """Complete a partial cloud given in any units, and return the result in those units.

    The ``(M, 3)`` partial cloud is normalised per shape (:meth:`ShapeFrame.fit`:
    its bounding box centred, its largest half-extent made ``target``), handed
    to ``sample`` as an ``(M, 3)`` float32 array, e.g.
    ``lambda p: task.sample_clouds(captions, num_points, partial=torch.from_numpy(p)[None].expand(B, -1, -1))``,
    which must return ``(B, N, 3)`` clouds in the training frame whose first
    ``M`` points are the given ones (:meth:`Shape3DTask.sample_clouds` holds
    them fixed), and the clouds are mapped back into the input's frame.  The
    first ``M`` rows of the result are a copy of ``partial_points`` (not a
    round trip through the frame), so the given points come back exactly.

    The frame is the partial cloud's own box, not the whole shape's, which is
    unknown: the completed shape may come out larger than the training shapes
    (a cut across the longest axis halves the partial's extent) and off-centre.

    Returns:
        ``(B, N, 3)`` clouds in the dtype of ``partial_points`` (float64 for
        integer input).
    """
    given = np.asarray(partial_points)
    if given.ndim != 2 or given.shape[1] != 3 or not len(given):
        raise ValueError(f"partial_points must have shape (M, 3) with M >= 1, got {given.shape}")
    frame = ShapeFrame.fit(given, target)
    generated = sample(np.ascontiguousarray(frame.to_frame(given), dtype=np.float32))  # (B, N, 3) training frame
    if isinstance(generated, torch.Tensor):
        generated = generated.detach().float().cpu().numpy()
    generated = np.asarray(generated)
    if generated.ndim != 3 or generated.shape[2] != 3 or generated.shape[1] < len(given):
        raise ValueError(f"sample must return (B, N, 3) clouds with N >= {len(given)}, got {generated.shape}")
    completed = frame.from_frame(generated).astype(np.result_type(given.dtype, np.float32))  # (B, N, 3)
    completed[:, : len(given)] = given
    return completed


# ----------------------------------------------------------------- helpers
def _as_points(points: np.ndarray) -> np.ndarray:
    """``(..., 3)`` float64 view or copy of ``points``."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim < 2 or array.shape[-1] != 3:
        raise ValueError(f"expected points of shape (..., N, 3), got {array.shape}")
    return array


def _bounding_boxes(clouds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding-box centres ``(M, 3)`` and largest half-extents ``(M,)`` of ``(M, N, 3)`` clouds."""
    if clouds.shape[1] == 0:
        raise ValueError("cannot frame an empty cloud (no points)")
    low, high = clouds.min(axis=1), clouds.max(axis=1)  # (M, 3) each
    return (low + high) / 2.0, ((high - low) / 2.0).max(axis=1)


def _check_extent(half: float, what: str) -> float:
    if not (np.isfinite(half) and half > 0.0):
        raise ValueError(f"{what} has no extent (largest half-extent {half}); all its points coincide")
    return half


def _check_scale(scale: float) -> None:
    if not (np.isfinite(scale) and scale > 0.0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
