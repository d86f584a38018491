"""Tests of the shape3d primitives, embedded data and real-format loaders."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import trimesh
from unidit.tasks.shape3d.data import (
    SYNSET_NAMES,
    ShapeCloudDataset,
    generate_embedded,
    load_mesh_folder,
    load_pc15k,
)
from unidit.tasks.shape3d.primitives import (
    KINDS,
    PROPORTIONS,
    SIDE,
    UPRIGHT,
    UPSIDE_DOWN,
    ShapeSpec,
    allowed_orientations,
    caption,
    sample_points,
)

SMALL = dict(num_train=40, num_val=8, num_test=24, num_points=256)


def test_every_spec_fits_its_box_and_is_centred():
    rng = np.random.default_rng(0)
    assert len(KINDS) >= 8
    for kind in KINDS:
        for proportion in PROPORTIONS[kind]:
            for orientation in allowed_orientations(kind, proportion):
                for size, bound in (("large", 0.9), ("small", 0.45)):
                    points = sample_points(ShapeSpec(kind, size, proportion, orientation), 512, rng)
                    assert points.shape == (512, 3) and points.dtype == np.float32
                    assert np.abs(points).max() <= bound + 1e-5
                    assert np.abs(points).max() > 0.6 * bound  # not degenerate
                    centre = (points.min(0) + points.max(0)) / 2
                    assert np.abs(centre).max() < 0.1 * bound


def test_orientation_flips_the_shape():
    """Cones, pyramids and hemispheres carry more surface near their base."""
    rng = np.random.default_rng(0)
    for kind in ("cone", "pyramid", "hemisphere"):
        upright = sample_points(ShapeSpec(kind, "large", "regular", UPRIGHT), 2048, rng)
        flipped = sample_points(ShapeSpec(kind, "large", "regular", UPSIDE_DOWN), 2048, rng)
        assert upright[:, 1].mean() < -0.05 < 0.05 < flipped[:, 1].mean()
    tall = sample_points(ShapeSpec("cylinder", "large", "tall thin", UPRIGHT), 2048, rng)
    lying = sample_points(ShapeSpec("cylinder", "large", "tall thin", SIDE), 2048, rng)
    assert np.ptp(tall[:, 1]) > 2 * np.ptp(tall[:, 0])
    assert np.ptp(lying[:, 1]) < 0.5 * np.ptp(lying[:, 0])


def test_spec_validation_and_captions():
    with pytest.raises(ValueError, match="kind"):
        ShapeSpec("blob")
    with pytest.raises(ValueError, match="orientation"):
        ShapeSpec("sphere", orientation=SIDE)
    spec = ShapeSpec("cylinder", "large", "tall thin", SIDE)
    assert caption(spec) == "a large tall thin cylinder lying on its side"
    assert caption(ShapeSpec("sphere", "small")) == "a small sphere"
    rng = np.random.default_rng(0)
    variants = {caption(ShapeSpec("cone", "small", "regular", UPSIDE_DOWN), rng) for _ in range(40)}
    assert len(variants) > 3 and "a small cone, upside down" in variants
    assert all("cone" in v and "upside down" in v for v in variants)


def test_embedded_is_deterministic_cached_and_balanced(tmp_path):
    first = generate_embedded(seed=3, cache_dir=tmp_path / "a", **SMALL)
    fresh = generate_embedded(seed=3, cache_dir=tmp_path / "b", **SMALL)
    start = time.perf_counter()
    cached = generate_embedded(seed=3, cache_dir=tmp_path / "a", **SMALL)
    assert time.perf_counter() - start < 2.0
    assert len(list((tmp_path / "a" / "shape3d").iterdir())) == 1  # no stray temporary folders
    for split, size in (("train", 40), ("val", 8), ("test", 24)):
        for other in (fresh, cached):
            assert np.array_equal(first[split].points, other[split].points)
            assert first[split].captions == other[split].captions
            assert np.array_equal(first[split].labels, other[split].labels)
            assert first[split].specs == other[split].specs
        assert first[split].points.shape == (size, 256, 3) and first[split].points.dtype == np.float32
        assert first[split].labels.dtype == np.int64
    assert np.bincount(first["test"].labels, minlength=len(KINDS)).tolist() == [3] * len(KINDS)
    other_seed = generate_embedded(seed=4, cache_dir=tmp_path / "a", **SMALL)
    assert not np.array_equal(first["train"].points, other_seed["train"].points)
    for text, spec, label in zip(first["train"].captions, first["train"].specs, first["train"].labels):
        assert spec.kind in text and KINDS[label] == spec.kind
        for word in spec.proportion.split():
            assert spec.proportion == "regular" or word in text


def test_dataset_items(tmp_path):
    shapes = generate_embedded(seed=0, cache_dir=tmp_path, **SMALL)["val"]
    item = ShapeCloudDataset(shapes)[2]
    assert item["points"].shape == (256, 3) and item["points"].dtype == torch.float32
    assert isinstance(item["caption"], str) and isinstance(item["label"], int)
    batch = next(iter(torch.utils.data.DataLoader(ShapeCloudDataset(shapes), batch_size=4)))
    assert batch["points"].shape == (4, 256, 3) and len(batch["caption"]) == 4


def test_shape_set_split_is_deterministic_and_disjoint(tmp_path):
    shapes = generate_embedded(seed=0, cache_dir=tmp_path, **SMALL)["train"]
    parts = shapes.split(seed=2)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [32, 4, 4]
    again = shapes.split(seed=2)
    assert all(np.array_equal(parts[k].points, again[k].points) for k in parts)
    rows = {tuple(p.points[:, 0, 0]) for p in parts.values()}
    merged = np.concatenate([p.points[:, 0, 0] for p in parts.values()])
    assert len(rows) == 3 and np.array_equal(np.sort(merged), np.sort(shapes.points[:, 0, 0]))
    assert parts["val"].label_names == list(KINDS) and parts["val"].specs[0].kind in parts["val"].captions[0]
    tiny = shapes.subset([0, 1, 2]).split(seed=0)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 1, 1]


def _fake_pc15k(root, synsets=("02691156", "03001627"), per_split=2):
    rng = np.random.default_rng(0)
    for s, synset in enumerate(synsets):
        for split in ("train", "test"):
            folder = root / synset / split
            folder.mkdir(parents=True)
            for m in range(per_split):
                np.save(folder / f"model{m}.npy", (rng.normal(size=(15000, 3)) + s).astype(np.float32))


def test_load_pc15k(tmp_path):
    _fake_pc15k(tmp_path)
    shapes = load_pc15k(tmp_path, None, "train", num_points=2048, seed=1)
    assert shapes.points.shape == (4, 2048, 3)
    assert shapes.labels.tolist() == [0, 0, 1, 1]
    assert shapes.captions == ["an airplane"] * 2 + ["a chair"] * 2
    assert shapes.label_names == [SYNSET_NAMES["02691156"], SYNSET_NAMES["03001627"]]
    again = load_pc15k(tmp_path, ["03001627"], "train", num_points=2048, seed=1)
    assert again.labels.tolist() == [0, 0] and again.captions == ["a chair", "a chair"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pc15k(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="val"):
        load_pc15k(tmp_path, None, "val")
    with pytest.raises(FileNotFoundError, match="04379243"):
        load_pc15k(tmp_path, ["04379243"], "train")
    np.save(tmp_path / "02691156" / "test" / "model9.npy", np.zeros((15000, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"model9.npy.*\(M, 3\)"):
        load_pc15k(tmp_path, None, "test")


def test_load_mesh_folder(tmp_path):
    (tmp_path / "meshes").mkdir()
    trimesh.creation.box().export(tmp_path / "meshes" / "box.ply")
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "meshes" / "ball.obj")
    trimesh.creation.cone(0.5, 1.0).export(tmp_path / "cone.off")
    (tmp_path / "captions.csv").write_text(
        "file,caption\nmeshes/box.ply,a box\nmeshes/ball.obj,\"a ball, round\"\ncone.off,a cone\n"
    )
    shapes = load_mesh_folder(tmp_path, "captions.csv", num_points=300)
    assert shapes.points.shape == (3, 300, 3)
    assert shapes.captions == ["a box", "a ball, round", "a cone"]
    assert shapes.labels.tolist() == [-1, -1, -1]
    raw = shapes.frames.from_frame(shapes.points)  # (3, 300, 3) back in the files' units
    assert np.allclose(np.linalg.norm(raw[1], axis=1), 1.0, atol=0.05)
    (tmp_path / "labelled.csv").write_text("file,caption,label\ncone.off,a cone,2\nmeshes/box.ply,a box,0\n")
    assert load_mesh_folder(tmp_path, "labelled.csv", num_points=10).labels.tolist() == [2, 0]

    (tmp_path / "escape.csv").write_text("file,caption\n../outside.ply,a thing\n")
    with pytest.raises(ValueError, match="inside"):
        load_mesh_folder(tmp_path, tmp_path / "escape.csv")
    (tmp_path / "absolute.csv").write_text(f"file,caption\n{tmp_path / 'cone.off'},a cone\n")
    with pytest.raises(ValueError, match="relative path"):
        load_mesh_folder(tmp_path, tmp_path / "absolute.csv")
    (tmp_path / "blank.csv").write_text("file,caption\ncone.off,  \n")
    with pytest.raises(ValueError, match="empty caption"):
        load_mesh_folder(tmp_path, tmp_path / "blank.csv")
    (tmp_path / "columns.csv").write_text("path,text\ncone.off,a cone\n")
    with pytest.raises(ValueError, match="file,caption"):
        load_mesh_folder(tmp_path, tmp_path / "columns.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_mesh_folder(tmp_path, "missing.csv")
