"""Unit-quaternion algebra for skeletons, ``(w, x, y, z)`` order, vectorised over any leading axes.

The same conventions as HumanML3D's ``common/quaternion.py`` (Guo et al., CVPR 2022), which its
263-d features depend on: ``qbetween(u, v)`` is the shortest rotation taking ``u`` to ``v``, and the
continuous 6D rotation (Zhou et al., CVPR 2019) is the first two columns of the rotation matrix.
Numpy functions work in float64; :func:`qrot_torch` / :func:`qinv_torch` serve the torch decoder.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product ``q * r`` of (..., 4) arrays."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def qinv(q: np.ndarray) -> np.ndarray:
    """Inverse of unit quaternions (the conjugate)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors ``v`` by (..., 4) unit quaternions ``q`` (broadcast)."""
    w, axis = q[..., :1], q[..., 1:]
    uv = np.cross(axis, v)
    return v + 2.0 * (w * uv + np.cross(axis, uv))


def qbetween(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating direction ``u`` onto ``v`` (both (..., 3))."""
    axis = np.cross(u, v)
    w = np.sqrt((u**2).sum(-1) * (v**2).sum(-1)) + (u * v).sum(-1)
    q = np.concatenate([w[..., None], axis], axis=-1)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    opposite = norm[..., 0] < 1e-9
    if opposite.any():  # u = -v: a half turn about any axis normal to u (Y first, so yaw stays yaw)
        unit = u[opposite] / np.linalg.norm(u[opposite], axis=-1, keepdims=True)
        normal = np.array([0.0, 1.0, 0.0]) - unit[:, 1:2] * unit
        small = np.linalg.norm(normal, axis=-1) < 1e-6
        normal[small] = np.array([1.0, 0.0, 0.0]) - unit[small, 0:1] * unit[small]
        q[opposite] = np.concatenate([np.zeros((len(unit), 1)), normal], axis=-1)
        norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / norm


def qfix(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 (time) so consecutive quaternions stay in one hemisphere."""
    out = q.copy()
    dots = (q[1:] * q[:-1]).sum(-1)  # (T-1, ...)
    flips = (np.cumsum(dots < 0, axis=0) % 2).astype(bool)
    out[1:][flips] *= -1
    return out


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 6): the rotation matrix's first and second columns, concatenated."""
    matrix = quat_to_matrix(q)  # (..., 3, 3)
    return np.concatenate([matrix[..., 0], matrix[..., 1]], axis=-1)


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Quaternions of rotations by ``angle`` (...,) radians about unit ``axis`` (3,) or (..., 3)."""
    axis = np.broadcast_to(np.asarray(axis, dtype=np.float64), np.shape(angle) + (3,))
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def qinv_torch(q: Tensor) -> Tensor:
    """Torch :func:`qinv`."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def qrot_torch(q: Tensor, v: Tensor) -> Tensor:
    """Torch :func:`qrot` over broadcastable (..., 4) and (..., 3) tensors."""
    w, axis = q[..., :1], q[..., 1:]
    axis, v = torch.broadcast_tensors(axis, v)
    uv = torch.linalg.cross(axis, v, dim=-1)
    return v + 2.0 * (w * uv + torch.linalg.cross(axis, uv, dim=-1))
