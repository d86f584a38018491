"""Fréchet distance between two sets of embeddings (Heusel et al. 2017, FID).

Each set is summarised by the mean and covariance of its rows; the distance
between the two Gaussians is ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``.
Every task reports it in the embedding space of its own classifier (FAD for
audio, FVD-style for video, FID for motion), so the formula lives here once.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of ``features`` (N, D); needs N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"expected (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians fitted to ``features_a`` (N, D) and ``features_b`` (M, D)."""
    if np.shape(features_a)[1:] != np.shape(features_b)[1:]:
        raise ValueError(f"feature widths differ: {np.shape(features_a)} vs {np.shape(features_b)}")
    mu_a, cov_a = gaussian_stats(features_a)
    mu_b, cov_b = gaussian_stats(features_b)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():  # singular product: nudge both covariances (as pytorch-fid does)
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean), 0.0))
