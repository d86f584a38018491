"""Tests of the PointNet faithfulness classifier and the media writers."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import trimesh
from unidit.tasks.shape3d.classifier import (
    PointNetClassifier,
    accuracy,
    load_or_train_classifier,
    predict,
    random_yaw,
    train_point_classifier,
)
from unidit.tasks.shape3d.data import generate_embedded
from unidit.tasks.shape3d.media import render_clouds_png, write_clouds_ply
from unidit.tasks.shape3d.primitives import KINDS


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return generate_embedded(seed=0, num_train=320, num_val=8, num_test=80, num_points=512, cache_dir=cache)


def test_pointnet_shapes_and_rotation():
    model = PointNetClassifier(num_classes=5, num_points=64)
    assert model(torch.randn(3, 100, 3)).shape == (3, 5)
    points = torch.randn(4, 50, 3)
    turned = random_yaw(points, torch.Generator().manual_seed(0))
    assert torch.allclose(turned[..., 1], points[..., 1])  # y is the rotation axis
    assert torch.allclose(turned.norm(dim=-1), points.norm(dim=-1), atol=1e-5)


def test_classifier_beats_chance_and_round_trips(small_split, tmp_path):
    """15 short epochs on 320 clouds take ~3 s; chance is 1/8, measured ~0.83 (seeds 0, 1)."""
    train, test = small_split["train"], small_split["test"]
    start = time.perf_counter()
    model = train_point_classifier(
        train.points, train.labels, len(KINDS), epochs=15, batch_size=16, num_points=256, seed=0
    )
    elapsed = time.perf_counter() - start
    score = accuracy(model, test.points, test.labels)
    assert score > 0.5, f"accuracy {score:.2f} after {elapsed:.1f}s"
    model.save_pretrained(tmp_path / "clf")
    assert (tmp_path / "clf" / "model.safetensors").is_file() and (tmp_path / "clf" / "config.json").is_file()
    loaded = PointNetClassifier.from_pretrained(tmp_path / "clf")
    assert np.array_equal(predict(loaded, test.points), predict(model, test.points))
    with pytest.raises(FileNotFoundError, match="config.json"):
        PointNetClassifier.from_pretrained(tmp_path / "missing")


def test_load_or_train_classifier_caches(small_split, tmp_path):
    train = small_split["val"]  # 8 clouds: enough to check the caching, not the accuracy
    first = load_or_train_classifier(train, cache_dir=tmp_path, epochs=1, num_points=64)
    folders = list((tmp_path / "shape3d").iterdir())
    assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    again = load_or_train_classifier(train, cache_dir=tmp_path, epochs=1, num_points=64)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    assert first.head[-1].out_features == len(KINDS)


def test_render_and_write_media(small_split, tmp_path):
    clouds = list(small_split["test"].points[:3])
    path = render_clouds_png(clouds, small_split["test"].captions[:3], tmp_path / "out" / "sheet.png", cols=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "sheet.png"]
    with pytest.raises(ValueError, match="titles"):
        render_clouds_png(clouds, ["one"], tmp_path / "bad.png")
    paths = write_clouds_ply(tmp_path / "ply", clouds, ["a", "b c", "../d"])
    assert [p.name for p in paths] == ["a.ply", "b_c.ply", "_d.ply"]
    assert all(p.parent == tmp_path / "ply" for p in paths)
    assert np.allclose(np.asarray(trimesh.load(paths[1]).vertices), clouds[1], atol=1e-6)


@pytest.mark.slow
def test_classifier_on_the_full_embedded_split(tmp_path):
    """Default training on 2400 clouds: measured ~19 s on 2 otherwise idle CPU
    cores (several times longer when other jobs share them, so no time is
    asserted), 97-99% test accuracy (seeds 0 and 1)."""
    splits = generate_embedded(seed=0, cache_dir=tmp_path)
    model = train_point_classifier(splits["train"].points, splits["train"].labels, len(KINDS), seed=0)
    assert accuracy(model, splits["test"].points, splits["test"].labels) >= 0.9
