"""The 22-joint HumanML3D kinematic tree (and KIT-ML's 21), forward and inverse kinematics.

Facts from HumanML3D's ``paramUtil.py`` / ``common/skeleton.py`` (Guo et al., "Generating Diverse and
Natural 3D Human Motions from Text", CVPR 2022): five chains from the pelvis, a unit *raw offset*
per joint giving its bone's rest direction (Y up, the body facing +Z, +X the body's left), bone
lengths taken from a reference pose. The IK assigns each bone the shortest rotation from its rest
direction to the observed one, relative to its parent's accumulated rotation (no twist: HumanML3D's
own approximation). All functions are vectorised over frames; loops run over the 21 bones only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from unidit.tokenizers.motion.quaternion import qbetween, qinv, qmul, qrot

T2M_KINEMATIC_CHAIN = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]
T2M_RAW_OFFSETS = np.array(
    [
        [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
        [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
        [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
    ],
    dtype=np.float64,
)  # fmt: skip
T2M_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
# Bone lengths (m) of a mid-sized adult on this tree, close to HumanML3D's reference skeleton.
T2M_BONE_LENGTHS = np.array(
    [0.0, 0.11, 0.11, 0.11, 0.38, 0.38, 0.13, 0.40, 0.40, 0.06, 0.13, 0.13, 0.21, 0.11, 0.11, 0.10,
     0.12, 0.12, 0.26, 0.26, 0.25, 0.25]
)  # fmt: skip

KIT_KINEMATIC_CHAIN = [[0, 11, 12, 13, 14, 15], [0, 16, 17, 18, 19, 20], [0, 1, 2, 3, 4], [3, 5, 6, 7], [3, 8, 9, 10]]
KIT_RAW_OFFSETS = np.array(
    [
        [0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0],
        [-1, 0, 0], [0, -1, 0], [0, -1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1],
        [-1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1],
    ],
    dtype=np.float64,
)  # fmt: skip


@dataclass(frozen=True)
class SkeletonLayout:
    """Joint indices the feature pipeline needs (HumanML3D's ``motion_representation`` constants)."""

    num_joints: int
    chains: tuple[tuple[int, ...], ...]
    raw_offsets: np.ndarray  # (J, 3) unit rest directions
    face_joints: tuple[int, int, int, int]  # right hip, left hip, right shoulder, left shoulder
    left_foot: tuple[int, int]  # ankle, toe
    right_foot: tuple[int, int]

    @property
    def parents(self) -> np.ndarray:
        parents = np.full(self.num_joints, -1)
        for chain in self.chains:
            parents[list(chain[1:])] = chain[:-1]
        return parents

    @property
    def feature_dim(self) -> int:
        """4 root + 3(J-1) RIC + 6(J-1) rotations + 3J velocities + 4 contacts (263 for 22 joints)."""
        return 4 + 9 * (self.num_joints - 1) + 3 * self.num_joints + 4


HUMANML3D = SkeletonLayout(22, tuple(map(tuple, T2M_KINEMATIC_CHAIN)), T2M_RAW_OFFSETS, (2, 1, 17, 16), (7, 10), (8, 11))
KIT = SkeletonLayout(21, tuple(map(tuple, KIT_KINEMATIC_CHAIN)), KIT_RAW_OFFSETS, (11, 16, 5, 8), (19, 20), (14, 15))


def bone_offsets(layout: SkeletonLayout = HUMANML3D, lengths: np.ndarray | None = None) -> np.ndarray:
    """(J, 3) rest offsets: raw direction x bone length (default :data:`T2M_BONE_LENGTHS`)."""
    lengths = T2M_BONE_LENGTHS if lengths is None else np.asarray(lengths, dtype=np.float64)
    return layout.raw_offsets * lengths[:, None]


def offsets_from_pose(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D) -> np.ndarray:
    """(J, 3) rest offsets with the bone lengths of one (J, 3) pose."""
    parents = layout.parents
    lengths = np.zeros(layout.num_joints)
    lengths[1:] = np.linalg.norm(joints[1:] - joints[parents[1:]], axis=-1)
    return layout.raw_offsets * lengths[:, None]


def facing_direction(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D, smooth_sigma: float = 0.0) -> np.ndarray:
    """(T, 3) unit forward directions on the ground plane from the hips and shoulders of (T, J, 3) joints.

    ``forward = up x across`` with ``across = (r_hip - l_hip) + (r_shoulder - l_shoulder)``;
    ``smooth_sigma`` > 0 Gaussian-smooths it over time first (HumanML3D uses 20 frames).
    """
    r_hip, l_hip, r_sdr, l_sdr = layout.face_joints
    across = (joints[:, r_hip] - joints[:, l_hip]) + (joints[:, r_sdr] - joints[:, l_sdr])  # (T, 3)
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)  # (T, 3)
    if smooth_sigma > 0:
        forward = gaussian_filter1d(forward, smooth_sigma, axis=0, mode="nearest")
    return forward / np.linalg.norm(forward, axis=-1, keepdims=True)


def inverse_kinematics(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D, smooth_sigma: float = 0.0) -> np.ndarray:
    """(T, J, 3) joint positions -> (T, J, 4) local joint quaternions; joint 0 holds the root's facing rotation.

    The root quaternion turns the facing direction onto +Z; every other joint's quaternion is its
    bone's shortest rotation from the raw offset to the observed direction, expressed in its
    parent's frame.
    """
    num_frames = len(joints)
    forward = facing_direction(joints, layout, smooth_sigma)  # (T, 3)
    root = qbetween(forward, np.broadcast_to([0.0, 0.0, 1.0], forward.shape))  # (T, 4)
    quats = np.zeros((num_frames, layout.num_joints, 4))
    quats[:, 0] = root
    for chain in layout.chains:
        accumulated = root
        for parent, child in zip(chain[:-1], chain[1:]):
            bone = joints[:, child] - joints[:, parent]  # (T, 3)
            bone = bone / np.linalg.norm(bone, axis=-1, keepdims=True)
            rest = np.broadcast_to(layout.raw_offsets[child], bone.shape)
            local = qmul(qinv(accumulated), qbetween(rest, bone))  # (T, 4)
            quats[:, child] = local
            accumulated = qmul(accumulated, local)
    return quats


def forward_kinematics(
    quats: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray, layout: SkeletonLayout = HUMANML3D
) -> np.ndarray:
    """(T, J, 4) local quaternions + (T, 3) root positions + (J, 3) rest offsets -> (T, J, 3) joints.

    Joint ``c`` with parent ``p`` sits at ``joint_p + R_c offset_c``, ``R_c`` the product of the
    root quaternion and the local quaternions down the chain up to and including ``c`` (the
    convention of :func:`inverse_kinematics`, so ``FK(IK(x))`` rebuilds ``x``'s bone directions).
    """
    joints = np.zeros(quats.shape[:-1] + (3,))
    joints[:, 0] = root_positions
    for chain in layout.chains:
        accumulated = quats[:, 0]
        for parent, child in zip(chain[:-1], chain[1:]):
            accumulated = qmul(accumulated, quats[:, child])
            joints[:, child] = joints[:, parent] + qrot(accumulated, np.broadcast_to(offsets[child], joints[:, child].shape))
    return joints
