"""HumanML3D feature pipeline on the public sample clip 012314 (copied into the motion task's tests)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from unidit.tokenizers.motion.humanml3d import (
    FORWARD_SMOOTHING,
    canonicalize,
    feature_slices,
    features_from_joints,
    recover_from_ric,
)
from unidit.tokenizers.motion.quaternion import qrot
from unidit.tokenizers.motion.skeleton import HUMANML3D, KIT, inverse_kinematics

SAMPLE = Path(__file__).resolve().parents[2] / "tasks" / "motion" / "tests" / "data" / "humanml3d"


@pytest.fixture(scope="module")
def sample():
    return np.load(SAMPLE / "new_joint_vecs" / "012314.npy"), np.load(SAMPLE / "new_joints" / "012314.npy")


def test_layout_widths():
    assert HUMANML3D.feature_dim == 263 and KIT.feature_dim == 251
    assert feature_slices(22)["contacts"].stop == 263


def test_recover_from_ric_matches_the_released_joints(sample):
    vecs, joints = sample
    recovered = recover_from_ric(vecs)
    assert recovered.shape == joints.shape
    # HumanML3D's new_joints are its own recover_from_ric of new_joint_vecs: ours agrees to float32 rounding.
    assert np.abs(recovered - joints).max() < 1e-5
    batched = recover_from_ric(torch.from_numpy(np.stack([vecs, vecs])))
    assert torch.allclose(batched[1], torch.from_numpy(joints), atol=1e-5)


def test_joints_features_joints_round_trip(sample):
    _, joints = sample
    features = features_from_joints(joints)
    assert features.shape == (len(joints) - 1, 263) and np.isfinite(features).all()
    # recover_from_ric starts the yaw at zero, i.e. in the frame of the smoothed root rotation at frame 0.
    canonical = canonicalize(joints)
    root0 = inverse_kinematics(canonical, smooth_sigma=FORWARD_SMOOTHING)[0, 0]
    expected = qrot(root0, canonical)[:-1]
    error = np.linalg.norm(recover_from_ric(features) - expected, axis=-1)
    assert error.max() < 1e-5  # metres (measured 2.7e-7)


def test_features_agree_with_the_released_vectors_where_defined_by_positions(sample):
    vecs, joints = sample
    features = features_from_joints(joints)
    slices = feature_slices(22)
    # Root height and foot contacts depend on positions only: identical to the release.
    assert np.abs(features[:, slices["root_height"]] - vecs[:-1, slices["root_height"]]).max() < 1e-5
    assert np.array_equal(features[:, slices["contacts"]], vecs[:-1, slices["contacts"]])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        features_from_joints(np.zeros((10, 21, 3)))
