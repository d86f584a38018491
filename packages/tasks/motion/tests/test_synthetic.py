"""The embedded motion set: deterministic, valid 263-d HumanML3D features, HumanML3D caption lines, cached."""

from __future__ import annotations

import numpy as np
import pytest
from unidit.tasks.motion.data import load_split, parse_caption_line
from unidit.tasks.motion.synthetic import EmbeddedMotion, compose_clip, embedded_dataset, tag
from unidit.tokenizers.motion.humanml3d import feature_slices, features_from_joints, recover_from_ric

SMALL = EmbeddedMotion(seed=3, num_train=12, num_val=3, num_test=4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return embedded_dataset(SMALL, cache_dir=tmp_path_factory.mktemp("cache"))


def test_clips_are_deterministic_from_the_seed():
    a_joints, a_text = compose_clip(np.random.default_rng(7))
    b_joints, b_text = compose_clip(np.random.default_rng(7))
    c_joints, _ = compose_clip(np.random.default_rng(8))
    assert np.array_equal(a_joints, b_joints) and a_text == b_text
    assert a_joints.shape != c_joints.shape or not np.allclose(a_joints, c_joints)


def test_features_come_from_the_humanml3d_pipeline(folder):
    name = (folder / "train.txt").read_text().split()[0]
    joints = np.load(folder / "new_joints" / f"{name}.npy")  # (T, 22, 3)
    features = np.load(folder / "new_joint_vecs" / f"{name}.npy")  # (T, 263)
    assert features.shape == (len(joints), 263) and features.dtype == np.float32
    assert np.isfinite(features).all()
    contacts = features[:, feature_slices(22)["contacts"]]
    assert set(np.unique(contacts)) <= {0.0, 1.0}
    # Recovering joints from the RIC channels gives a skeleton with the same bone lengths.
    recovered = recover_from_ric(features)  # (T, 22, 3)
    bone = lambda j: np.linalg.norm(j[:, 4] - j[:, 1], axis=-1)  # left hip -> left knee  # noqa: E731
    assert np.allclose(bone(recovered), bone(joints), atol=1e-4)
    # Root height and contacts depend on positions only: featurising the stored joints gives them back.
    again = features_from_joints(joints)  # (T - 1, 263)
    for name in ("root_height", "contacts"):
        part = feature_slices(22)[name]
        assert np.allclose(again[:, part], features[:-1, part], atol=1e-5), name


def test_captions_are_humanml3d_text_lines(folder):
    for path in sorted((folder / "texts").glob("*.txt"))[:5]:
        lines = path.read_text().splitlines()
        assert len(lines) == 3
        for number, line in enumerate(lines, 1):
            assert line.count("#") == 3
            caption = parse_caption_line(line, path, number)
            assert caption.start == 0.0 and caption.end == 0.0
            assert caption.tokens == tag(caption.text).split()
            assert all("/" in token for token in caption.tokens)


def test_splits_are_disjoint_and_sized(folder):
    names = {split: (folder / f"{split}.txt").read_text().split() for split in ("train", "val", "test")}
    assert [len(names[s]) for s in ("train", "val", "test")] == [12, 3, 4]
    assert not set(names["train"]) & set(names["test"]) and not set(names["train"]) & set(names["val"])
    mean, std = np.load(folder / "Mean.npy"), np.load(folder / "Std.npy")
    assert mean.shape == std.shape == (263,) and (std > 0).all()
    split = load_split(folder, "train", min_frames=1)
    assert len(split.clips) == 12 and np.array_equal(split.mean, mean)


def test_cache_is_reused_and_keyed_by_parameters(folder, tmp_path):
    marker = folder / "new_joint_vecs" / "000000.npy"
    stamp = marker.stat().st_mtime_ns
    assert embedded_dataset(SMALL, cache_dir=folder.parents[1]) == folder
    assert marker.stat().st_mtime_ns == stamp  # not regenerated
    other = embedded_dataset(EmbeddedMotion(seed=4, num_train=2, num_val=1, num_test=1), cache_dir=folder.parents[1])
    assert other != folder and (other / "done.json").is_file()
    again = embedded_dataset(SMALL, cache_dir=tmp_path)
    for name in ("000000", "000013"):
        assert np.array_equal(np.load(again / "new_joint_vecs" / f"{name}.npy"), np.load(folder / "new_joint_vecs" / f"{name}.npy"))
