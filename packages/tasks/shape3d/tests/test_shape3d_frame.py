"""Tests of the shape3d training frame: transforms, loaders in file units, completion in the input's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from unidit.tasks.shape3d.data import generate_embedded, load_mesh_folder, load_pc15k
from unidit.tasks.shape3d.frame import ShapeFrame, ShapeFrames, complete_in_input_frame
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tokenizers.meshes import load_points

SHIFT = np.array([5000.0, -3000.0, 200.0])  # millimetres, far from the origin


def _half_extent(cloud: np.ndarray) -> float:
    return float(np.ptp(cloud, axis=-2).max() / 2)


def test_round_trip_and_per_shape_fit():
    rng = np.random.default_rng(0)
    clouds = rng.normal(size=(4, 100, 3)) * 250.0 + SHIFT  # (B, N, 3)
    frame = ShapeFrame.fit(clouds[0])
    assert np.allclose(frame.from_frame(frame.to_frame(clouds[0])), clouds[0], rtol=0, atol=1e-9)  # (N, 3)
    assert np.allclose(frame.from_frame(frame.to_frame(clouds)), clouds, rtol=0, atol=1e-9)  # (B, N, 3)
    framed = frame.to_frame(clouds[0])
    assert np.isclose(_half_extent(framed), 0.9) and np.allclose(framed.min(0) + framed.max(0), 0.0)
    assert np.isclose(_half_extent(ShapeFrame.fit(clouds[0], target=0.45).to_frame(clouds[0])), 0.45)
    frames = ShapeFrames.fit(clouds)
    assert np.allclose(frames.from_frame(frames.to_frame(clouds)), clouds, rtol=0, atol=1e-9)  # (M, N, 3)
    assert np.allclose(frames[2].to_frame(clouds[2]), frames.to_frame(clouds)[2])
    assert np.array_equal(frames.subset([3, 1]).centres, frames.centres[[3, 1]])
    with pytest.raises(ValueError, match="no extent"):
        ShapeFrame.fit(np.ones((5, 3)))
    with pytest.raises(ValueError, match="4 clouds"):
        frames.to_frame(clouds[:2])


def test_dataset_frame_keeps_the_ratio_of_sizes():
    rng = np.random.default_rng(1)
    ball = rng.normal(size=(500, 3))
    ball /= np.linalg.norm(ball, axis=1, keepdims=True)  # (N, 3) unit sphere
    clouds = np.stack([2000.0 * ball + SHIFT, 6000.0 * ball - SHIFT])  # a small and a large sphere, (2, N, 3)
    frames = ShapeFrames.fit(clouds)
    framed = frames.to_frame(clouds)
    small, large = _half_extent(framed[0]), _half_extent(framed[1])
    assert np.isclose(large / small, _half_extent(clouds[1]) / _half_extent(clouds[0]))  # 3, as in the files
    assert np.allclose(framed.min(1) + framed.max(1), 0.0, atol=1e-12)  # each centred on its own box
    halves = [_half_extent(c) for c in clouds]
    assert np.isclose(frames.scale, 0.9 / np.quantile(halves, 0.95))  # the documented statistic
    assert large <= 1.0
    # per shape, by contrast, both become 0.9: the size difference is lost
    assert np.isclose(_half_extent(ShapeFrame.fit(clouds[0]).to_frame(clouds[0])), 0.9)


def test_embedded_data_is_in_the_frame(tmp_path):
    splits = generate_embedded(seed=0, num_train=40, num_val=8, num_test=8, num_points=2048, cache_dir=tmp_path)
    train = splits["train"]
    assert np.array_equal(train.frames.centres, np.zeros((40, 3))) and train.frames.scale == 1.0
    # The dataset statistic finds the embedded data (nearly) where it is: the sampled points'
    # boxes are a little smaller than the meshes' boxes the primitives are scaled by.
    fitted = ShapeFrames.fit(train.points)
    assert abs(fitted.scale - 1.0) < 0.03
    assert np.abs(fitted.centres).max() < 0.05
    assert len(train.split(seed=0)["val"].frames) == len(train.split(seed=0)["val"])


def test_mesh_folder_in_millimetres_loads_into_the_frame(tmp_path):
    meshes = {
        "box.ply": trimesh.creation.box(extents=(1.0, 2.0, 0.5)),  # half-extent 1 m
        "ball.obj": trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        "slab.stl": trimesh.creation.box(extents=(0.6, 0.2, 0.4)),
    }
    for name, mesh in meshes.items():
        mesh.apply_scale(1000.0)  # metres -> millimetres
        mesh.apply_translation(SHIFT)
        mesh.export(tmp_path / name)
    (tmp_path / "captions.csv").write_text("file,caption\n" + "".join(f"{n},a {n[:-4]}\n" for n in meshes))
    shapes = load_mesh_folder(tmp_path, "captions.csv", num_points=400, seed=3)
    raw = np.stack([load_points(tmp_path / n, 400, seed=3 + i) for i, n in enumerate(meshes)])  # (3, 400, 3) mm
    assert np.abs(shapes.points).max() <= 1.0 and shapes.points.dtype == np.float32
    assert np.allclose(shapes.frames.from_frame(shapes.points), raw, rtol=0, atol=0.01)  # back in mm
    sizes = [_half_extent(c) for c in shapes.points]
    assert np.isclose(sizes[0] / sizes[2], _half_extent(raw[0]) / _half_extent(raw[2]), rtol=1e-4)
    parts = shapes.split(seed=0, fractions=(0.34, 0.34))
    for part in parts.values():  # split / subset keep each cloud's frame with it
        rows = [next(i for i in range(3) if np.array_equal(shapes.points[i], p)) for p in part.points]
        assert np.allclose(part.frames.from_frame(part.points), raw[rows], rtol=0, atol=0.01)
    assert shapes.frames.shared().scale == shapes.frames.scale


def test_pc15k_splits_share_the_train_scale(tmp_path):
    rng = np.random.default_rng(0)
    for split, spread in (("train", 300.0), ("test", 900.0)):
        folder = tmp_path / "03001627" / split
        folder.mkdir(parents=True)
        for m in range(3):
            np.save(folder / f"model{m}.npy", (rng.uniform(-spread, spread, size=(3000, 3)) + SHIFT).astype(np.float32))
    train = load_pc15k(tmp_path, None, "train", num_points=512)
    test = load_pc15k(tmp_path, None, "test", num_points=512)
    assert test.frames.scale == train.frames.scale
    assert np.isclose(np.abs(train.points).max(), 0.9, rtol=0.02)
    assert np.isclose(np.abs(test.points).max(), 2.7, rtol=0.02)  # three times larger, as in the files
    assert load_pc15k(tmp_path, None, "test", num_points=512, scale=1e-3).frames.scale == 1e-3


def test_completion_in_input_frame_does_not_depend_on_units():
    torch.manual_seed(0)
    task = Shape3DTask(preset="tiny", resolution=8, patch_size=4, grid_channels=4)
    # A fresh model predicts zero velocity (its last layer is zero): give it some, so the
    # generated points depend on the (normalised) partial cloud the model is shown.
    torch.nn.init.normal_(task.denoiser.point_mlp[-1].weight, std=0.5)
    task.setup("fit")
    task.eval()
    captions, num_points = ["a sphere", "a large sphere"], 256

    def sample(partial: np.ndarray) -> torch.Tensor:
        known = torch.from_numpy(partial)[None].expand(len(captions), -1, -1)  # (B, M, 3)
        return task.sample_clouds(captions, num_points, partial=known)  # (B, N, 3) training frame

    surface, _ = trimesh.sample.sample_surface(trimesh.creation.icosphere(subdivisions=3), 400, seed=0)
    unit = surface[surface[:, 1] > 0]  # (M, 3) upper half of a unit sphere
    scaled = unit * 1000.0 + SHIFT  # the same partial in millimetres, far from the origin
    known = len(unit)
    completed_unit = complete_in_input_frame(sample, unit)  # (B, N, 3)
    completed_scaled = complete_in_input_frame(sample, scaled)  # (B, N, 3)
    assert completed_scaled.shape == (2, num_points, 3) and completed_scaled.dtype == np.float64
    assert (completed_unit[:, :known] == unit).all() and (completed_scaled[:, :known] == scaled).all()
    # Equal up to rounding only: the two normalised partials come from float64 arithmetic at
    # different magnitudes, so after the float32 cast they may differ in the last bit, and so
    # may the model's outputs; mapping back multiplies those differences by the input's scale
    # (1000), hence a tolerance relative to it.
    expected = completed_unit * 1000.0 + SHIFT  # (B, N, 3)
    assert np.allclose(completed_scaled, expected, rtol=0, atol=1e-5 * 1000.0)
    # Generated around the input, in its units (the raw partial handed to the model, as before,
    # came back as noise about the origin, 5800 mm away).
    generated = completed_scaled[:, known:]  # (B, N - M, 3)
    assert np.linalg.norm(generated.mean(axis=1) - SHIFT, axis=-1).max() < 2000.0
