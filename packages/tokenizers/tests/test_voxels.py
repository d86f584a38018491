"""Tests of the DiT-3D voxel tokenizer and the shape file reader/writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from unidit.tokenizers.meshes import load_points, write_ply
from unidit.tokenizers.voxels import Voxelizer


def _chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(a, b) ** 2  # (B, N, M)
    return d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1)


def _sphere(batch: int = 2, n: int = 2048, radius: float = 0.8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    p = torch.randn(batch, n, 3, generator=g)  # (B, N, 3)
    return p / p.norm(dim=-1, keepdim=True) * radius


def test_voxelize_averages_points_in_a_voxel():
    vox = Voxelizer(resolution=3, normalize=False)
    # normalize=False maps [-1, 1] to [0, 2]: -1 -> 0, 0 -> 1, 1 -> 2.
    points = torch.tensor([[[-1.0, -1.0, -1.0], [-0.9, -1.0, -1.0], [1.0, 0.0, -1.0]]])  # (1, 3, 3)
    features = torch.tensor([[[2.0, 10.0], [4.0, 20.0], [7.0, 1.0]]])  # (1, 3, 2)
    grid, coords = vox.voxelize(features, points)
    assert grid.shape == (1, 2, 3, 3, 3)
    assert torch.allclose(coords[0, 2], torch.tensor([2.0, 1.0, 0.0]))
    assert torch.allclose(grid[0, :, 0, 0, 0], torch.tensor([3.0, 15.0]))  # mean of two points
    assert torch.allclose(grid[0, :, 2, 1, 0], torch.tensor([7.0, 1.0]))  # axes (D, H, W) = (x, y, z)
    assert grid.abs().sum() == pytest.approx(3.0 + 15.0 + 7.0 + 1.0)  # every other voxel empty
    assert vox.occupancy(coords).sum() == 3


def test_grid_coords_normalized_fill_the_grid():
    vox = Voxelizer(resolution=32)
    coords = vox.grid_coords(_sphere() + torch.tensor([5.0, -3.0, 2.0]))  # shifted: still centred
    assert coords.min() >= 0 and coords.max() <= 31
    centre = coords.mean(dim=1)  # (B, 3)
    assert torch.allclose(centre, torch.full_like(centre, 16.0), atol=0.5)


def test_devoxelize_is_exact_on_a_linear_field():
    """Trilinear interpolation reproduces a linear function; checks the axis order."""
    r = 8
    vox = Voxelizer(resolution=r)
    i, j, k = torch.meshgrid(torch.arange(r), torch.arange(r), torch.arange(r), indexing="ij")
    field = (i + 10 * j + 100 * k).float()[None, None]  # (1, 1, r, r, r)
    coords = torch.rand(1, 50, 3, generator=torch.Generator().manual_seed(1)) * (r - 1)  # (1, 50, 3)
    values = vox.devoxelize(field, coords)  # (1, 50, 1)
    expected = coords[..., 0] + 10 * coords[..., 1] + 100 * coords[..., 2]
    assert torch.allclose(values[..., 0], expected, atol=1e-3)


def test_encode_decode_round_trip_chamfer():
    """Round trip of 2048 points on a radius-0.8 sphere at r=32.

    Measured Chamfer distance (sum of both mean squared NN distances):
    ~3e-4 with empty voxels masked (``decode`` default), ~0.13 with plain
    PVD trilinear devoxelization, which mixes in empty voxels' zeros.  Bounds:
    1e-3 and 0.2.
    """
    points = _sphere()
    vox = Voxelizer(resolution=32)
    grid, coords = vox.encode(points)
    assert grid.shape == (2, 3, 32, 32, 32)
    decoded = vox.decode(grid, coords)
    assert decoded.shape == points.shape
    assert _chamfer(decoded, points).max() < 1e-3
    plain = vox.decode(grid, coords, mask_empty=False)
    assert _chamfer(plain, points).max() < 0.2


def test_voxelize_rejects_bad_shapes():
    vox = Voxelizer()
    with pytest.raises(ValueError, match="B, N, 3"):
        vox.encode(torch.zeros(2, 10, 2))
    with pytest.raises(ValueError, match="features"):
        vox.voxelize(torch.zeros(2, 9, 4), torch.zeros(2, 10, 3))


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".off", ".stl"])
def test_load_mesh_formats(tmp_path, suffix):
    mesh = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    path = tmp_path / f"box{suffix}"
    mesh.export(path)
    points = load_points(path, 500, seed=3)
    assert points.shape == (500, 3) and points.dtype == np.float32
    assert np.allclose(np.abs(points).max(axis=0), [1.0, 0.5, 0.25], atol=1e-4)
    # on the surface: at least one coordinate sits on a face of the box
    on_face = np.isclose(np.abs(points) / [1.0, 0.5, 0.25], 1.0, atol=1e-4).any(axis=1)
    assert on_face.all()
    assert np.array_equal(points, load_points(path, 500, seed=3))
    assert not np.array_equal(points, load_points(path, 500, seed=4))


def test_load_npy_and_point_cloud_ply(tmp_path):
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", cloud)
    sub = load_points(tmp_path / "c.npy", 100, seed=0)
    assert sub.shape == (100, 3)
    assert len(np.unique(sub, axis=0)) == 100  # without replacement
    assert np.isin(sub[:, 0], cloud[:, 0]).all()
    for binary in (True, False):
        path = write_ply(tmp_path / "out" / f"c{int(binary)}.ply", cloud, binary=binary)
        loaded = trimesh.load(path)
        assert np.allclose(np.asarray(loaded.vertices), cloud, atol=1e-5)
        assert load_points(path, 100, seed=0).shape == (100, 3)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_points(tmp_path / "missing.npy", 10)
    bad = tmp_path / "corrupt.ply"
    bad.write_bytes(b"definitely not a ply\x00\x01")
    with pytest.raises(ValueError, match="corrupt.ply"):
        load_points(bad, 10)
    bad_obj = tmp_path / "corrupt.obj"
    bad_obj.write_text("hello world\n")
    with pytest.raises(ValueError, match="corrupt.obj"):
        load_points(bad_obj, 10)
    bad_npy = tmp_path / "corrupt.npy"
    bad_npy.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="corrupt.npy"):
        load_points(bad_npy, 10)
    np.save(tmp_path / "flat.npy", np.zeros((20, 2)))
    with pytest.raises(ValueError, match=r"flat.npy.*\(M, 3\)"):
        load_points(tmp_path / "flat.npy", 10)
    nan = np.zeros((20, 3))
    nan[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match="nan.npy.*NaN"):
        load_points(tmp_path / "nan.npy", 10)
    np.save(tmp_path / "few.npy", np.zeros((5, 3)))
    with pytest.raises(ValueError, match="few.npy.*too few"):
        load_points(tmp_path / "few.npy", 10)
    (tmp_path / "empty.stl").write_text("")
    with pytest.raises(ValueError, match="empty.stl"):
        load_points(tmp_path / "empty.stl", 10)


# ------------------------------------------------------------- fast samplers
def _probe_coords(batch: int, n: int, r: int, seed: int = 0) -> torch.Tensor:
    """Random grid coordinates plus points on the grid's faces, corners and outside it."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, n, 3, generator=g) * (r - 1)  # (B, N, 3) interior, almost surely off-integer
    coords[:, 0] = 0.0  # the first voxel's centre
    coords[:, 1] = r - 1.0  # the last voxel's centre
    coords[:, 2:6, 0] = r - 1.0  # on the upper x face
    coords[:, 6:10, 1] = 0.0  # on the lower y face
    coords[:, 10:14, 2] = r - 1.0
    coords[:, 14:20] = torch.rand(batch, 6, 3, generator=g) * (r + 1) - 1.0  # partly outside: zero padding
    return coords


# 40^3 voxel ids pass 2^15 (16-bit sort keys wrap through int16); 41^3 > 2^16: the torch.argsort path
@pytest.mark.parametrize("r", [2, 5, 16, 40, 41])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_sampler_matches_grid_sample(r, dtype):
    """Values and gradients (grid and coordinates) of the two samplers agree to float rounding.

    Measured: ~3e-7 relative to the largest magnitude in float32 (the samplers sum the corners in
    different orders and grid_sample rounds the coordinates through [-1, 1]), ~1e-15 in float64.
    Bounds: 2e-6 and 1e-12.
    """
    from unidit.tokenizers.voxels import trilinear_gather, trilinear_grid_sample

    g = torch.Generator().manual_seed(r)
    batch, n, channels = 3, 300, 5
    grid = torch.randn(batch, channels, r, r, r, generator=g, dtype=dtype)  # (B, C, r, r, r)
    grid[:, :, : r // 2] = 0.0  # empty voxels
    coords = _probe_coords(batch, n, r).to(dtype)  # (B, N, 3)
    grad_out = torch.randn(batch, n, channels, generator=g, dtype=dtype)  # (B, N, C)
    results = []
    for sample in (trilinear_grid_sample, trilinear_gather):
        grid_in = grid.clone().requires_grad_()
        coords_in = coords.clone().requires_grad_()
        out = sample(grid_in, coords_in)  # (B, N, C)
        (out * grad_out).sum().backward()  # not out.backward(grad_out): torch then imports its fx (seconds)
        results.append((out, grid_in.grad, coords_in.grad))
    rtol = 2e-6 if dtype == torch.float32 else 1e-12
    for reference, fast in zip(*results, strict=True):
        assert fast.shape == reference.shape and fast.dtype == reference.dtype
        assert (fast - reference).abs().max() <= rtol * reference.abs().max()


def test_gather_sampler_backward_is_deterministic_and_scatters_every_corner():
    """Same bits on a second run (a resumed run relies on it); the grid gradient sums every weight."""
    from unidit.tokenizers.voxels import trilinear_gather

    r = 6
    coords = _probe_coords(2, 400, r)  # (B, N, 3)
    coords[:, 14:20].clamp_(0, r - 1)  # inside: every point's weights sum to 1
    grads = []
    for _ in range(2):
        grid = torch.zeros(2, 1, r, r, r, requires_grad=True)
        trilinear_gather(grid, coords).sum().backward()
        grads.append(grid.grad)
    assert torch.equal(grads[0], grads[1])
    assert torch.allclose(grads[0].sum(dim=(1, 2, 3, 4)), torch.full((2,), 400.0))


@pytest.mark.parametrize("mask_empty", [False, True])
def test_devoxelize_samplers_agree_on_voxelized_clouds(mask_empty):
    """The tokenizer path end to end: a voxelized cloud (many empty voxels) read back both ways."""
    points = _sphere(batch=2, n=1000)
    reference, fast = Voxelizer(resolution=16, sampler="grid_sample"), Voxelizer(resolution=16, sampler="gather")
    grid, coords = reference.encode(points)
    assert (grid == 0).all(dim=1).float().mean() > 0.5  # mostly empty voxels
    want = reference.devoxelize(grid, coords, mask_empty=mask_empty)
    got = fast.devoxelize(grid, coords, mask_empty=mask_empty)
    assert (got - want).abs().max() <= 2e-6 * want.abs().max()
    auto = Voxelizer(resolution=16).devoxelize(grid, coords, mask_empty=mask_empty)
    assert torch.equal(auto, got)  # "auto" gathers on a CPU


def test_voxelize_matches_a_point_by_point_average():
    """Average voxelization against a plain loop over points, boundary points and empty voxels included."""
    r = 4
    vox = Voxelizer(resolution=r, normalize=False)
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2, 60, 3, generator=g) * 2.0 - 1.0  # (B, N, 3) in [-1, 1]
    points[:, :4] = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 1.0]])
    features = torch.randn(2, 60, 3, generator=g)  # (B, N, C)
    grid, coords = vox.voxelize(features, points)
    sums = torch.zeros(2, 3, r, r, r, dtype=torch.float64)
    counts = torch.zeros(2, 1, r, r, r, dtype=torch.float64)
    for b in range(2):
        for n in range(60):
            i, j, k = (int(v) for v in coords[b, n].round().long())
            sums[b, :, i, j, k] += features[b, n].double()
            counts[b, :, i, j, k] += 1
    expected = sums / counts.clamp(min=1)
    assert (counts == 0).any()  # some voxels stay empty (and 0)
    assert torch.allclose(grid.double(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(vox.occupancy(coords), counts.float())


def test_gather_sampler_follows_autocast_like_grid_sample():
    """CPU autocast runs grid_sample in float32 on a bfloat16 grid; the gather sampler does the same.

    (grid_sample's path rounds the coordinates to the grid's bfloat16 first; the
    gather sampler keeps them in float32, so it is compared with a float32 grid.)
    """
    from unidit.tokenizers.voxels import trilinear_gather, trilinear_grid_sample

    grid = torch.randn(2, 3, 4, 4, 4).bfloat16()
    coords = torch.rand(2, 10, 3, generator=torch.Generator().manual_seed(0)) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_reference, got = trilinear_grid_sample(grid, coords), trilinear_gather(grid, coords)
    assert autocast_reference.dtype == got.dtype == torch.float32
    assert torch.allclose(got, trilinear_grid_sample(grid.float(), coords), atol=1e-6)
    assert trilinear_gather(grid, coords).dtype == torch.bfloat16  # no autocast: the grid's dtype


def test_sampler_is_validated_and_shown():
    with pytest.raises(ValueError, match="sampler"):
        Voxelizer(sampler="nearest")
    assert "sampler='gather'" in repr(Voxelizer(sampler="gather"))
