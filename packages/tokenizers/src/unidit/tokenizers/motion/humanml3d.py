"""HumanML3D's motion representation both ways: joint positions <-> 263-d features (KIT-ML: 251-d).

Guo et al., "Generating Diverse and Natural 3D Human Motions from Text" (CVPR 2022), §3 and the
public ``motion_representation`` script. Per frame ``t`` (``J`` joints, features for ``T - 1``
frames from ``T`` poses):

====================  ==========  ===================================================================
slice                 width       meaning
====================  ==========  ===================================================================
``[0]``               1           root rotation velocity about Y (half-angle, rad / frame)
``[1:3]``             2           root linear velocity on XZ in the root's own facing frame
``[3]``               1           root height
``ric``               3(J-1)      joints relative to the root on XZ, rotated to face +Z (RIC)
``rot``               6(J-1)      continuous 6D local joint rotations from the IK
``vel``               3J          joint velocities in the root's facing frame
``contacts``          4           left ankle/toe, right ankle/toe contact (speed^2 < threshold)
====================  ==========  ===================================================================

Before featurising, the clip is put on the floor, its first root moved to the XZ origin and the
whole clip turned so that frame 0 faces +Z. HumanML3D also retargets every clip to one reference
skeleton first (``uniform_skeleton``); :func:`features_from_joints` expects joints already on the
skeleton the features should describe (the embedded data is built on one).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from unidit.tokenizers.motion.quaternion import (
    qbetween,
    qinv,
    qinv_torch,
    qmul,
    qrot,
    qrot_torch,
    quat_to_cont6d,
)
from unidit.tokenizers.motion.skeleton import HUMANML3D, SkeletonLayout, facing_direction, inverse_kinematics

FPS = 20
FOOT_CONTACT_THRESHOLD = 0.002  # squared displacement per frame (m^2), HumanML3D's ``feet_thre``
FORWARD_SMOOTHING = 20.0  # Gaussian sigma (frames) of the facing direction behind the root rotation


def feature_slices(num_joints: int = 22) -> dict[str, slice]:
    """Named slices of the feature vector of a ``num_joints`` skeleton."""
    ric = 4 + 3 * (num_joints - 1)
    rot = ric + 6 * (num_joints - 1)
    vel = rot + 3 * num_joints
    return {
        "root_rot_velocity": slice(0, 1),
        "root_linear_velocity": slice(1, 3),
        "root_height": slice(3, 4),
        "ric": slice(4, ric),
        "rot": slice(ric, rot),
        "velocity": slice(rot, vel),
        "contacts": slice(vel, vel + 4),
    }


def canonicalize(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D) -> np.ndarray:
    """(T, J, 3) -> the same clip on the floor (min Y = 0), root at the XZ origin and facing +Z at frame 0."""
    joints = np.asarray(joints, dtype=np.float64).copy()
    joints[..., 1] -= joints[..., 1].min()
    joints -= joints[0, 0] * np.array([1.0, 0.0, 1.0])
    forward = facing_direction(joints[:1], layout)  # (1, 3)
    turn = qbetween(forward, np.array([[0.0, 0.0, 1.0]]))  # (1, 4)
    return qrot(turn[:, None], joints)  # (T, J, 3)


def foot_contacts(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D, threshold: float = FOOT_CONTACT_THRESHOLD) -> np.ndarray:
    """(T, J, 3) -> (T-1, 4) float contacts: left ankle, left toe, right ankle, right toe."""
    feet = list(layout.left_foot) + list(layout.right_foot)
    speed2 = ((joints[1:, feet] - joints[:-1, feet]) ** 2).sum(-1)  # (T-1, 4)
    return (speed2 < threshold).astype(np.float64)


def features_from_joints(
    joints: np.ndarray, layout: SkeletonLayout = HUMANML3D, contact_threshold: float = FOOT_CONTACT_THRESHOLD
) -> np.ndarray:
    """(T, J, 3) joint positions (metres, Y up) -> (T-1, D) float32 HumanML3D features (D = 263 for 22 joints)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (layout.num_joints, 3):
        raise ValueError(f"expected joints of shape (T, {layout.num_joints}, 3), got {joints.shape}")
    if len(joints) < 2:
        raise ValueError(f"a clip needs at least 2 frames to have velocities, got {len(joints)}")
    positions = canonicalize(joints, layout)  # (T, J, 3) global, facing +Z at frame 0
    contacts = foot_contacts(positions, layout, contact_threshold)  # (T-1, 4)

    quats = inverse_kinematics(positions, layout, smooth_sigma=FORWARD_SMOOTHING)  # (T, J, 4)
    root_rot = quats[:, 0]  # (T, 4) world -> facing frame
    root_velocity = qrot(root_rot[1:], positions[1:, 0] - positions[:-1, 0])  # (T-1, 3)
    turn = qmul(root_rot[1:], qinv(root_rot[:-1]))  # (T-1, 4) rotation about Y between frames

    local = positions.copy()
    local[..., [0, 2]] -= positions[:, :1, [0, 2]]
    local = qrot(root_rot[:, None], local)  # (T, J, 3) rotation-invariant coordinates

    num_frames = len(positions) - 1
    root = np.concatenate(
        [np.arcsin(np.clip(turn[:, 2:3], -1.0, 1.0)), root_velocity[:, [0, 2]], local[:-1, 0, 1:2]], axis=-1
    )  # (T-1, 4)
    ric = local[:-1, 1:].reshape(num_frames, -1)  # (T-1, 3(J-1))
    rot = quat_to_cont6d(quats[:-1, 1:]).reshape(num_frames, -1)  # (T-1, 6(J-1))
    velocity = qrot(root_rot[:-1, None], positions[1:] - positions[:-1]).reshape(num_frames, -1)  # (T-1, 3J)
    return np.concatenate([root, ric, rot, velocity, contacts], axis=-1).astype(np.float32)


def recover_root(features: Tensor) -> tuple[Tensor, Tensor]:
    """(..., T, D) features -> root quaternions (..., T, 4) and root positions (..., T, 3).

    The yaw is the cumulated rotation velocity (frame 0 at zero); the XZ path the cumulated linear
    velocity turned back to world axes; the height is read directly.
    """
    rot_velocity = features[..., 0]  # (..., T)
    angle = torch.cumsum(torch.cat([torch.zeros_like(rot_velocity[..., :1]), rot_velocity[..., :-1]], dim=-1), dim=-1)
    zeros = torch.zeros_like(angle)
    root_quat = torch.stack([torch.cos(angle), zeros, torch.sin(angle), zeros], dim=-1)  # (..., T, 4)
    step = torch.zeros(features.shape[:-1] + (3,), dtype=features.dtype, device=features.device)
    step[..., 1:, 0] = features[..., :-1, 1]
    step[..., 1:, 2] = features[..., :-1, 2]
    path = torch.cumsum(qrot_torch(qinv_torch(root_quat), step), dim=-2)  # (..., T, 3)
    root_pos = torch.cat([path[..., :1], features[..., 3:4], path[..., 2:3]], dim=-1)
    return root_quat, root_pos


def recover_from_ric(features: Tensor | np.ndarray, num_joints: int = 22) -> Tensor | np.ndarray:
    """(..., T, D) features -> (..., T, J, 3) joint positions from the RIC channels (HumanML3D's decoder).

    Numpy in, numpy out; tensors keep their dtype and device (differentiable).
    """
    as_numpy = isinstance(features, np.ndarray)
    data = torch.from_numpy(features) if as_numpy else features
    root_quat, root_pos = recover_root(data)
    ric = data[..., feature_slices(num_joints)["ric"]]
    ric = ric.reshape(ric.shape[:-1] + (num_joints - 1, 3))  # (..., T, J-1, 3)
    joints = qrot_torch(qinv_torch(root_quat)[..., None, :], ric)  # (..., T, J-1, 3)
    offset = torch.stack([root_pos[..., 0], torch.zeros_like(root_pos[..., 0]), root_pos[..., 2]], dim=-1)
    joints = torch.cat([root_pos[..., None, :], joints + offset[..., None, :]], dim=-2)  # (..., T, J, 3)
    return joints.numpy() if as_numpy else joints
