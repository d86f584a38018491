"""BVH export: forward kinematics of the written file (read back by an independent reader) gives the
joints back, on forward-kinematics clips of the embedded set and on HumanML3D's real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from bvh_reader import elementary, forward_kinematics, read_bvh
from unidit.tasks.motion.bvh import write_bvh
from unidit.tasks.motion.synthetic import compose_clip
from unidit.tokenizers.motion import recover_from_ric
from unidit.tokenizers.motion.skeleton import T2M_JOINT_NAMES

SAMPLE = Path(__file__).parent / "data" / "humanml3d"
TOLERANCE_M = 1e-5  # BVH numbers are written with 6 decimals (1e-6 m, 1e-6 degree)


def round_trip(joints: np.ndarray, path: Path, fps: float = 20.0) -> tuple[np.ndarray, list, float]:
    """The joints forward kinematics puts where the written BVH says, in HumanML3D order."""
    write_bvh(path, joints, fps)
    bvh_joints, values, frame_time = read_bvh(path)
    positions = forward_kinematics(bvh_joints, values)  # (T, J, 3) in file order
    order = [[j.name for j in bvh_joints].index(name) for name in T2M_JOINT_NAMES]
    return positions[:, order], bvh_joints, frame_time


@pytest.mark.parametrize("seed", [0, 3])
def test_embedded_clips_round_trip(seed, tmp_path):
    joints, _ = compose_clip(np.random.default_rng(seed))  # (T, 22, 3) by forward kinematics
    positions, bvh_joints, frame_time = round_trip(joints, tmp_path / "clip.bvh")
    assert np.abs(positions - joints).max() < TOLERANCE_M
    assert frame_time == pytest.approx(1 / 20) and len(bvh_joints) == 22
    assert bvh_joints[0].channels[:3] == ["Xposition", "Yposition", "Zposition"]


def test_humanml3d_sample_round_trips_and_bones_keep_their_lengths(tmp_path):
    joints = recover_from_ric(np.load(SAMPLE / "new_joint_vecs" / "012314.npy"))  # (170, 22, 3)
    positions, bvh_joints, _ = round_trip(joints, tmp_path / "012314.bvh")
    assert np.abs(positions - joints).max() < TOLERANCE_M
    offsets = {j.name: np.linalg.norm(j.offset) for j in bvh_joints}
    shin = np.linalg.norm(joints[:, 4] - joints[:, 1], axis=-1)  # left hip -> left knee
    assert offsets["left_knee"] == pytest.approx(np.median(shin), abs=1e-5)


def test_twist_is_inherited_on_single_child_bones(tmp_path):
    """A joint with one child has no twist of its own: turning the elbow bone in place leaves the
    elbow's rotation a pure swing (its axis normal to the rest bone direction)."""
    joints, _ = compose_clip(np.random.default_rng(1))
    write_bvh(tmp_path / "clip.bvh", joints, 20.0)
    bvh_joints, values, _ = read_bvh(tmp_path / "clip.bvh")
    column = 6 + 3 * ([j.name for j in bvh_joints].index("left_elbow") - 1)
    z, y, x = (elementary(axis, values[:, column + k]) for k, axis in enumerate("ZYX"))
    rotation = z @ y @ x  # (T, 3, 3) the channels' order
    axes = Rotation.from_matrix(rotation).as_rotvec()  # (T, 3)
    rest = np.array([0.0, -1.0, 0.0])  # the wrist's rest direction from the elbow
    assert np.abs(axes @ rest).max() < 1e-4


def test_bad_joints_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"expected joints \(T >= 1, 22, 3\)"):
        write_bvh(tmp_path / "x.bvh", np.zeros((5, 21, 3)), 20.0)
    bad = np.zeros((5, 22, 3))
    bad[2, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_bvh(tmp_path / "x.bvh", bad, 20.0)
