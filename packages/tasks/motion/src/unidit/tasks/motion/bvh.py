"""BVH export of joint-position motions: the HumanML3D 22-joint tree as a rig any animation tool imports.

BVH (Biovision Hierarchy; Meredith & Maddock 2001, "Motion capture file formats explained") holds a
``HIERARCHY`` of joints, each with a fixed ``OFFSET`` from its parent and rotation channels, and a
``MOTION`` block of one line of channel values per frame. Written here:

- the joints of :data:`~unidit.tokenizers.motion.skeleton.HUMANML3D` with their HumanML3D names,
  offsets from :func:`~unidit.tasks.motion.rig_ik.rest_offsets` (the clip's median bone lengths,
  metres, Y up, facing +Z: the rest pose is HumanML3D's T-pose with arms down);
- root channels ``Xposition Yposition Zposition Zrotation Yrotation Xrotation``, every other joint
  ``Zrotation Yrotation Xrotation``; a joint's rotation is ``Rz · Ry · Rx`` (intrinsic Z-Y-X, in
  degrees) applied to its children's offsets, the rotations from :func:`~unidit.tasks.motion.rig_ik.local_rotations`;
- an ``End Site`` after each leaf, along its own rest direction (it places no joint).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from einops import rearrange
from scipy.spatial.transform import Rotation
from unidit.tasks.motion.rig_ik import children_of, local_rotations, rest_offsets
from unidit.tokenizers.motion.skeleton import HUMANML3D, T2M_JOINT_NAMES, SkeletonLayout

ROTATION_CHANNELS = "Zrotation Yrotation Xrotation"
END_SITE_LENGTH = 0.05  # metres


def hierarchy_lines(offsets: np.ndarray, layout: SkeletonLayout, names: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """The ``HIERARCHY`` block and the joints in the order their channels appear (depth first)."""
    children = children_of(layout)
    lines, order = ["HIERARCHY"], []

    def joint(index: int, depth: int) -> None:
        pad = "\t" * depth
        order.append(index)
        if index == 0:
            lines.extend([f"ROOT {names[0]}", "{", "\tOFFSET 0.000000 0.000000 0.000000",
                          f"\tCHANNELS 6 Xposition Yposition Zposition {ROTATION_CHANNELS}"])
        else:
            lines.extend([f"{pad}JOINT {names[index]}", f"{pad}{{", f"{pad}\tOFFSET {number_row(offsets[index])}",
                          f"{pad}\tCHANNELS 3 {ROTATION_CHANNELS}"])
        for child in children[index]:
            joint(child, depth + 1)
        if not children[index]:
            tip = layout.raw_offsets[index] * END_SITE_LENGTH
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {number_row(tip)}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    return lines, order


def number_row(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in np.asarray(values, dtype=np.float64).ravel())


def write_bvh(path: str | Path, joints: np.ndarray, fps: float, layout: SkeletonLayout = HUMANML3D,
              names: tuple[str, ...] = T2M_JOINT_NAMES) -> Path:
    """Write joint positions ``(T, J, 3)`` (metres) as a BVH at ``fps`` frames per second; returns the path."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (layout.num_joints, 3) or len(joints) < 1:
        raise ValueError(f"write_bvh: expected joints (T >= 1, {layout.num_joints}, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("write_bvh: joint positions contain NaN or infinite values")
    if len(names) != layout.num_joints:
        raise ValueError(f"write_bvh: {len(names)} joint names for {layout.num_joints} joints")
    offsets = rest_offsets(joints, layout)  # (J, 3)
    local = local_rotations(joints, offsets, layout)  # (T, J, 3, 3)
    lines, order = hierarchy_lines(offsets, layout, names)
    matrices = rearrange(local[:, order], "t j a b -> (t j) a b")  # joints in channel order
    with warnings.catch_warnings():  # at Y = ±90° scipy zeroes X and puts the whole turn in Z: still exact
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        angles = Rotation.from_matrix(matrices).as_euler("ZYX", degrees=True)  # (T*J, 3) intrinsic Z, Y, X
    angles = rearrange(angles, "(t j) c -> t (j c)", t=len(joints))  # (T, 3J)
    lines += ["MOTION", f"Frames: {len(joints)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [number_row(np.concatenate([root, row])) for root, row in zip(joints[:, 0], angles)]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
