"""Tests of the PointFlow metrics: CD, EMD, 1-NNA, COV, MMD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.tasks.shape3d.metrics import (
    chamfer_distance,
    chamfer_matrix,
    coverage,
    emd,
    emd_matrix,
    evaluate_clouds,
    mmd,
    one_nna,
    pairwise_chamfer,
    pairwise_emd,
    subsample,
)
from unidit.tasks.shape3d.primitives import ShapeSpec, sample_points


def _clouds(count: int, n: int, seed: int) -> torch.Tensor:
    return torch.randn(count, n, 3, generator=torch.Generator().manual_seed(seed)) * 0.3  # (M, n, 3)


def test_chamfer_zero_symmetric_and_matches_brute_force():
    a, b = _clouds(3, 200, 0), _clouds(3, 150, 1)
    assert torch.allclose(chamfer_distance(a, a), torch.zeros(3), atol=1e-6)
    assert torch.allclose(chamfer_distance(a, b), chamfer_distance(b, a), atol=1e-6)
    d = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)  # (B, N, M)
    brute = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    assert torch.allclose(chamfer_distance(a, b, chunk=2, rows=64), brute, rtol=1e-4, atol=1e-6)


def test_pairwise_chamfer_matches_per_pair():
    x, y = _clouds(4, 64, 2), _clouds(3, 64, 3)
    table = pairwise_chamfer(x, y)
    assert table.shape == (4, 3)
    assert torch.allclose(table[2, 1], chamfer_distance(x[2:3], y[1:2])[0])


def test_tree_chamfer_tables_match_the_dense_distance():
    """The k-d tree tables equal the dense |a|^2 + |b|^2 - 2ab Chamfer of each pair (float32 rounding)."""
    x, y = _clouds(3, 300, 6), _clouds(4, 200, 7)
    dense = torch.stack([chamfer_distance(x[g : g + 1].expand(4, -1, -1), y) for g in range(3)])  # (G, R)
    assert torch.allclose(pairwise_chamfer(x, y), dense, rtol=1e-5, atol=1e-7)
    z = _clouds(5, 256, 8)
    table = chamfer_matrix(z)
    assert torch.equal(table, table.T) and torch.all(table.diagonal() == 0)
    assert torch.allclose(table, pairwise_chamfer(z, z), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match=r"\(G, N, 3\)"):
        pairwise_chamfer(x[..., :2], y)


def test_emd_matrix_solves_each_pair_once_and_matches_emd():
    z = _clouds(4, 200, 9)
    table = emd_matrix(z, num_points=48, seed=3)
    sub = subsample(z, 48, seed=3)  # (M, 48, 3)
    assert torch.equal(table, table.T) and torch.all(table.diagonal() == 0)
    assert torch.allclose(table[1, 3], emd(sub[1:2], sub[3:4])[0])


def test_emd_permutation_and_shift():
    a = _clouds(2, 128, 4)
    permuted = a[:, torch.randperm(128, generator=torch.Generator().manual_seed(0))]
    assert torch.allclose(emd(a, permuted), torch.zeros(2), atol=1e-6)
    # For a translation the identity matching is optimal (triangle inequality),
    # so the mean matched distance equals the length of the shift.
    shift = torch.tensor([0.3, -0.4, 0.0])  # |shift| = 0.5
    assert torch.allclose(emd(a, a + shift), torch.full((2,), 0.5), atol=1e-5)
    with pytest.raises(ValueError, match="equal-size"):
        emd(a, a[:, :100])


def test_pairwise_emd_subsamples_deterministically():
    x = _clouds(3, 512, 5)
    first, second = pairwise_emd(x, x, num_points=64, seed=1), pairwise_emd(x, x, num_points=64, seed=1)
    assert torch.equal(first, second) and first.shape == (3, 3)
    assert torch.allclose(first.diagonal(), torch.zeros(3), atol=1e-6)


def test_one_nna_coverage_mmd_on_hand_made_tables():
    d_xy = torch.tensor([[0.1, 0.9, 0.8], [0.2, 0.7, 0.9]])  # (G=2, R=3)
    assert coverage(d_xy) == pytest.approx(1 / 3)  # both generated clouds pick reference 0
    assert mmd(d_xy) == pytest.approx((0.1 + 0.7 + 0.8) / 3)
    far = torch.full((2, 2), 5.0)
    near_x, near_y = torch.tensor([[0.0, 0.1], [0.1, 0.0]]), torch.tensor([[0.0, 0.2], [0.2, 0.0]])
    assert one_nna(near_x, near_y, far) == 1.0


def test_one_nna_same_distribution_is_near_half():
    """Two samples of one distribution: every cloud's nearest neighbour is as
    likely to come from either set, so 1-NNA ~ 0.5.  With 2 x 64 clouds the
    standard deviation of the accuracy is about sqrt(0.25 / 128) ~ 0.044; a
    tolerance of 0.15 is over three of them (seeds are fixed, so the test is
    deterministic; measured 0.49).
    """
    x, y = _clouds(64, 128, 10), _clouds(64, 128, 11)
    value = one_nna(pairwise_chamfer(x, x), pairwise_chamfer(y, y), pairwise_chamfer(x, y))
    assert abs(value - 0.5) < 0.15


def test_one_nna_different_distributions_is_one():
    rng = np.random.default_rng(0)
    spheres = np.stack([sample_points(ShapeSpec("sphere"), 256, rng) for _ in range(12)])
    cubes = np.stack([sample_points(ShapeSpec("cube", "large", "short wide"), 256, rng) for _ in range(12)])
    d_xy = pairwise_chamfer(spheres, cubes)
    assert one_nna(pairwise_chamfer(spheres, spheres), pairwise_chamfer(cubes, cubes), d_xy) == 1.0
    results = evaluate_clouds(spheres, cubes, emd_points=128, progress=False)
    assert set(results) == {"1-NNA-CD", "1-NNA-EMD", "COV-CD", "COV-EMD", "MMD-CD", "MMD-EMD"}
    assert results["1-NNA-CD"] == 1.0 and results["1-NNA-EMD"] == 1.0
    same = evaluate_clouds(spheres[:6], spheres[6:], emd_points=64, progress=False)
    assert same["MMD-CD"] < results["MMD-CD"] and same["MMD-EMD"] < results["MMD-EMD"]
