"""A small BVH reader and forward kinematics, written apart from the writer so the round trip checks it.

Reads ``ROOT`` / ``JOINT`` / ``End Site`` blocks, their ``OFFSET`` and ``CHANNELS``, and the
``MOTION`` rows; a joint's rotation is the product of its rotation channels' elementary rotations
in the order the channels are listed (the BVH convention), and a child sits at
``x_parent + G_parent · offset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)


def elementary(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``degrees`` (T,) about the X, Y or Z axis."""
    angle = np.radians(degrees)
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def read_bvh(path: Path) -> tuple[list[BvhJoint], np.ndarray, float]:
    """The joints (channel order), the motion rows (T, channels) and the frame time."""
    tokens = Path(path).read_text().split()
    joints: list[BvhJoint] = []
    stack: list[int] = []
    i = 0
    while tokens[i] != "MOTION":
        word = tokens[i]
        if word in ("ROOT", "JOINT"):
            joints.append(BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3)))
            i += 2
        elif word == "End":  # End Site: a block with an offset and no joint
            stack.append(-1)
            i += 3  # End Site {
            i += 4  # OFFSET x y z
            continue
        elif word == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif word == "}":
            stack.pop()
            i += 1
        elif word == "OFFSET":
            joints[stack[-1]].offset = np.array([float(v) for v in tokens[i + 1 : i + 4]])
            i += 4
        elif word == "CHANNELS":
            count = int(tokens[i + 1])
            joints[stack[-1]].channels = tokens[i + 2 : i + 2 + count]
            i += 2 + count
        else:
            i += 1
    frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    values = np.array([float(v) for v in tokens[i + 6 :]]).reshape(frames, -1)
    return joints, values, frame_time


def forward_kinematics(joints: list[BvhJoint], values: np.ndarray) -> np.ndarray:
    """Positions (T, J, 3) of every joint (in file order) from the channel values (T, channels)."""
    frames = len(values)
    world = np.zeros((frames, len(joints), 3, 3))
    positions = np.zeros((frames, len(joints), 3))
    column = 0
    for index, joint in enumerate(joints):
        rotation = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
        translation = np.broadcast_to(joint.offset, (frames, 3)).copy()
        for channel in joint.channels:
            if channel.endswith("position"):
                axis = "XYZ".index(channel[0])
                translation[:, axis] = joint.offset[axis] + values[:, column]
            else:
                rotation = rotation @ elementary(channel[0], values[:, column])
            column += 1
        if joint.parent < 0:
            positions[:, index], world[:, index] = translation, rotation
        else:
            parent = joint.parent
            positions[:, index] = positions[:, parent] + np.einsum("tij,j->ti", world[:, parent], joint.offset)
            world[:, index] = world[:, parent] @ rotation
    return positions
