"""Point cloud generation metrics (PointFlow, Yang et al. 2019, §5; used by PVD and DiT-3D).

A generated set ``X`` (G clouds) is compared with a reference set ``Y`` (R
clouds) through a distance between clouds, Chamfer (CD) or Earth Mover's (EMD):

* **1-NNA**: leave-one-out accuracy of a 1-nearest-neighbour classifier that
  tells ``X`` from ``Y`` in ``X u Y``; 0.5 is ideal (indistinguishable), 1.0
  means every cloud's nearest neighbour comes from its own set.
* **COV**: fraction of reference clouds that are the nearest reference of some
  generated cloud (higher is better; measures mode coverage).
* **MMD**: mean over reference clouds of the distance to the closest
  generated cloud (lower is better; measures fidelity).

Conventions: CD is the sum of the two mean squared nearest-neighbour
distances; EMD is the mean Euclidean distance of the optimal one-to-one
matching (PointFlow's definition), computed exactly with
``scipy.optimize.linear_sum_assignment``.  Exact EMD costs ~0.5 s per pair of
2048-point clouds on one CPU core (cubic in the size), so :func:`pairwise_emd`
works on deterministic subsamples (256 points by default, ~3 ms a pair).
All metrics are returned as fractions / raw distances, not percentages.

Speed: :func:`evaluate_clouds` needs the distance between every two clouds of
``X u Y``. Chamfer goes through one k-d tree per cloud
(``scipy.spatial.cKDTree``, exact nearest neighbours): each tree is queried
once with the points of every cloud, so a table of M clouds costs M queries of
``M * N`` points instead of ``M^2`` dense ``N x N`` distance blocks (those are
memory-bound: the inner dimension is 3). Both distances are symmetric, so EMD
solves each unordered pair once.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from torch import Tensor
from tqdm.auto import tqdm


def _as_tensor(x) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)


def _chamfer_block(a: Tensor, b: Tensor, rows: int) -> Tensor:
    """Chamfer of ``(B, N, 3)`` vs ``(B, M, 3)``, streaming ``rows`` points of ``a`` at a time."""
    b_sq = (b * b).sum(-1).unsqueeze(1)  # (B, 1, M)
    b_t = b.transpose(1, 2).contiguous()  # (B, 3, M)
    col_min = torch.full(b.shape[:2], float("inf"))  # (B, M)
    row_sum = torch.zeros(a.shape[0])  # (B,)
    for start in range(0, a.shape[1], rows):
        block = a[:, start : start + rows]  # (B, n, 3)
        # |a|^2 + |b|^2 - 2 a.b, one (B, n, M) block at a time
        d = torch.baddbmm(b_sq, block, b_t, alpha=-2.0).add_((block * block).sum(-1, keepdim=True))
        row_sum += d.amin(dim=2).clamp(min=0.0).sum(dim=1)
        col_min = torch.minimum(col_min, d.amin(dim=1))
    return row_sum / a.shape[1] + col_min.clamp(min=0.0).mean(dim=1)


def chamfer_distance(a, b, chunk: int = 8, rows: int = 512) -> Tensor:
    """Chamfer distance per pair: ``(B, N, 3), (B, M, 3) -> (B,)``.

    ``mean_i min_j |a_i - b_j|^2 + mean_j min_i |a_i - b_j|^2``; computed
    ``chunk`` pairs and ``rows`` points at a time, so memory stays at
    ``chunk * rows * M`` floats.
    """
    a, b = _as_tensor(a), _as_tensor(b)
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError(f"expected (B, N, 3) and (B, M, 3) clouds, got {tuple(a.shape)} and {tuple(b.shape)}")
    with torch.no_grad():
        parts = [
            _chamfer_block(a[start : start + chunk], b[start : start + chunk], rows)
            for start in range(0, a.shape[0], chunk)
        ]
    return torch.cat(parts)


def _mean_squared_nearest(queries: np.ndarray, targets: np.ndarray, progress: bool = False) -> np.ndarray:
    """``out[i, j]`` = mean over the points of ``queries[i]`` of the squared distance to the
    nearest point of ``targets[j]``: ``(Q, N, 3), (T, M, 3) -> (Q, T)`` (float64, exact)."""
    flat = queries.reshape(-1, 3)  # (Q*N, 3)
    out = np.empty((len(queries), len(targets)))
    for j in tqdm(range(len(targets)), desc="pairwise CD", disable=not progress, leave=False):
        distance, _ = cKDTree(targets[j]).query(flat, k=1, workers=-1)  # (Q*N,)
        out[:, j] = (distance.reshape(len(queries), -1) ** 2).mean(axis=1)
    return out


def pairwise_chamfer(x, y, chunk: int = 8, progress: bool = False) -> Tensor:
    """Chamfer distance of every pair: ``(G, N, 3), (R, M, 3) -> (G, R)``.

    Exact nearest neighbours from one k-d tree per cloud (see the module
    docstring); ``chunk`` is unused and kept for callers of the dense version.
    """
    x, y = _as_tensor(x).numpy().astype(np.float64), _as_tensor(y).numpy().astype(np.float64)
    if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != 3 or y.shape[-1] != 3:
        raise ValueError(f"expected (G, N, 3) and (R, M, 3) clouds, got {x.shape} and {y.shape}")
    x_to_y = _mean_squared_nearest(x, y, progress)  # (G, R)
    y_to_x = _mean_squared_nearest(y, x, progress)  # (R, G)
    return torch.from_numpy(x_to_y + y_to_x.T).float()


def chamfer_matrix(clouds, progress: bool = False) -> Tensor:
    """Chamfer distance between every two clouds of one set: ``(M, N, 3) -> (M, M)``, symmetric,
    zero diagonal; ``M`` tree queries (half of what ``pairwise_chamfer(z, z)`` does)."""
    z = _as_tensor(clouds).numpy().astype(np.float64)
    one_way = _mean_squared_nearest(z, z, progress)  # (M, M)
    return torch.from_numpy(one_way + one_way.T).float()


def emd(a, b) -> Tensor:
    """Exact EMD per pair of equal-size clouds: ``(B, N, 3), (B, N, 3) -> (B,)``.

    Mean Euclidean distance between matched points under the optimal
    bijection (Hungarian algorithm on the ``N x N`` distance matrix).
    """
    a, b = _as_tensor(a), _as_tensor(b)
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"EMD needs equal-size (B, N, 3) clouds, got {tuple(a.shape)} and {tuple(b.shape)}")
    cost = torch.cdist(a.double(), b.double()).numpy()  # (B, N, N)
    values = []
    for matrix in cost:
        rows, cols = linear_sum_assignment(matrix)
        values.append(matrix[rows, cols].mean())
    return torch.tensor(values, dtype=torch.float32)


def subsample(clouds, num_points: int, seed: int = 0) -> Tensor:
    """Deterministic per-cloud subsets without replacement: ``(M, N, 3) -> (M, num_points, 3)``."""
    clouds = _as_tensor(clouds)
    if clouds.shape[1] <= num_points:
        return clouds
    rng = np.random.default_rng(seed)
    index = np.stack([rng.choice(clouds.shape[1], num_points, replace=False) for _ in range(len(clouds))])
    return torch.gather(clouds, 1, torch.from_numpy(index)[..., None].expand(-1, -1, 3))  # (M, n, 3)


def pairwise_emd(x, y, num_points: int = 256, seed: int = 0, progress: bool = False) -> Tensor:
    """EMD of every pair on ``num_points``-point subsamples: ``(G, N, 3), (R, N, 3) -> (G, R)``."""
    xs, ys = subsample(x, num_points, seed), subsample(y, num_points, seed)  # same seed: d(x, x) has a zero diagonal
    out = torch.zeros(xs.shape[0], ys.shape[0])  # (G, R)
    for g in tqdm(range(xs.shape[0]), desc="pairwise EMD", disable=not progress, leave=False):
        out[g] = emd(xs[g : g + 1].expand(ys.shape[0], -1, -1), ys)  # (R,)
    return out


def emd_matrix(clouds, num_points: int = 256, seed: int = 0, progress: bool = False) -> Tensor:
    """EMD between every two clouds of one set on ``num_points`` subsamples: ``(M, N, 3) -> (M, M)``;
    each unordered pair is solved once."""
    zs = subsample(clouds, num_points, seed)  # (M, n, 3)
    out = torch.zeros(len(zs), len(zs))  # (M, M)
    for i in tqdm(range(len(zs) - 1), desc="pairwise EMD", disable=not progress, leave=False):
        rest = zs[i + 1 :]  # (M-i-1, n, 3)
        out[i, i + 1 :] = emd(zs[i : i + 1].expand(len(rest), -1, -1), rest)
    return out + out.T


def one_nna(d_xx, d_yy, d_xy) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of telling X from Y (0.5 ideal).

    Args:
        d_xx: ``(G, G)`` distances within X; d_yy: ``(R, R)`` within Y;
        d_xy: ``(G, R)`` from X to Y.
    """
    d_xx, d_yy, d_xy = _as_tensor(d_xx), _as_tensor(d_yy), _as_tensor(d_xy)
    g, r = d_xy.shape
    full = torch.cat([torch.cat([d_xx, d_xy], 1), torch.cat([d_xy.T, d_yy], 1)], 0)  # (G+R, G+R)
    full = full.clone().fill_diagonal_(float("inf"))
    is_x = torch.cat([torch.ones(g, dtype=torch.bool), torch.zeros(r, dtype=torch.bool)])  # (G+R,)
    nearest = full.argmin(dim=1)  # (G+R,)
    return (is_x[nearest] == is_x).float().mean().item()


def coverage(d_xy) -> float:
    """Fraction of references that are some generated cloud's nearest reference."""
    d_xy = _as_tensor(d_xy)  # (G, R)
    return d_xy.argmin(dim=1).unique().numel() / d_xy.shape[1]


def mmd(d_xy) -> float:
    """Minimum matching distance: mean over references of the closest generated distance."""
    return _as_tensor(d_xy).min(dim=0).values.mean().item()  # mean over R of min over G


def evaluate_clouds(generated, reference, emd_points: int = 256, progress: bool = True) -> dict[str, float]:
    """PointFlow's table for ``generated (G, N, 3)`` against ``reference (R, N, 3)``.

    Keys: ``1-NNA-CD, 1-NNA-EMD, COV-CD, COV-EMD, MMD-CD, MMD-EMD``; both sets
    are usually normalised the same way beforehand (PVD: per-shape unit box).
    """
    x, y = _as_tensor(generated), _as_tensor(reference)
    g = len(x)
    both = torch.cat([x, y])  # (G+R, N, 3): every distance 1-NNA needs is a block of one table
    results = {}
    for name, table in (("CD", chamfer_matrix(both, progress)), ("EMD", emd_matrix(both, emd_points, 0, progress))):
        d_xx, d_xy, d_yy = table[:g, :g], table[:g, g:], table[g:, g:]
        results[f"1-NNA-{name}"] = one_nna(d_xx, d_yy, d_xy)
        results[f"COV-{name}"] = coverage(d_xy)
        results[f"MMD-{name}"] = mmd(d_xy)
    return {key: results[key] for key in ("1-NNA-CD", "1-NNA-EMD", "COV-CD", "COV-EMD", "MMD-CD", "MMD-EMD")}
