"""Procedural animation of the 22-joint HumanML3D skeleton: actions as joint-angle curves, then FK.

Each action fills per-frame flexion (about the body's X axis) and abduction (about Z) angles of the
joints, a yaw rate and a body-frame root velocity; :func:`pose_skeleton` runs ordinary hierarchical
forward kinematics on the rest skeleton (raw offsets x bone lengths, HumanML3D's ``paramUtil``), so
bone lengths are constant by construction. Every frame is then grounded (the lowest foot joint
touches Y = 0) unless the action is airborne. Body frame: Y up, facing +Z, +X the body's left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from unidit.tokenizers.motion.humanml3d import FPS
from unidit.tokenizers.motion.quaternion import axis_angle, qmul, qrot
from unidit.tokenizers.motion.skeleton import HUMANML3D, bone_offsets

L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 1, 2, 4, 5, 7, 8
SPINE = (3, 6, 9)
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 16, 17, 18, 19
FEET = (7, 8, 10, 11)


@dataclass
class Segment:
    """Curves of one action over ``n`` frames."""

    n: int
    flex: np.ndarray = field(init=False)  # (n, 22) radians, + bends a limb backwards / knees
    abduct: np.ndarray = field(init=False)  # (n, 22) radians about Z
    yaw_rate: np.ndarray = field(init=False)  # (n,) radians per frame, + turns left
    velocity: np.ndarray = field(init=False)  # (n, 3) metres per frame in the body frame
    lift: np.ndarray = field(init=False)  # (n,) metres above the grounded height

    def __post_init__(self) -> None:
        self.flex, self.abduct = np.zeros((self.n, 22)), np.zeros((self.n, 22))
        self.yaw_rate, self.velocity, self.lift = np.zeros(self.n), np.zeros((self.n, 3)), np.zeros(self.n)


def _phase(n: int, cycles: float) -> np.ndarray:
    return 2 * np.pi * cycles * np.arange(n) / n


def _bump(n: int, count: int) -> np.ndarray:
    """``count`` smooth 0 -> 1 -> 0 bumps over ``n`` frames."""
    return 0.5 - 0.5 * np.cos(_phase(n, count))


def gait(steps: int, speed: float, direction: float, run: bool) -> Segment:
    """Walking / running: ``steps`` strides at ``speed`` m/s, ``direction`` +1 forward, -1 backward."""
    stride_s = 0.7 if run else 1.1
    seg = Segment(max(8, int(steps * stride_s * FPS / 2)))
    phase = _phase(seg.n, steps / 2)
    swing = (0.7 if run else 0.45) * np.sin(phase)
    seg.flex[:, L_HIP], seg.flex[:, R_HIP] = -swing * direction, swing * direction
    knee = (1.2 if run else 0.6) * np.clip(np.sin(phase + np.pi / 2), 0, None)
    seg.flex[:, L_KNEE], seg.flex[:, R_KNEE] = knee, (1.2 if run else 0.6) * np.clip(-np.sin(phase + np.pi / 2), 0, None)
    seg.flex[:, L_SHOULDER], seg.flex[:, R_SHOULDER] = 0.8 * swing, -0.8 * swing
    seg.flex[:, [L_ELBOW, R_ELBOW]] = -1.2 if run else -0.3
    seg.flex[:, SPINE] = -0.08 if run else 0.0
    seg.velocity[:, 2] = direction * speed / FPS
    if run:
        seg.lift = 0.06 * np.abs(np.sin(phase))
    return seg


def sidestep(steps: int, side: float) -> Segment:
    """Stepping sideways, ``side`` +1 to the left, -1 to the right."""
    seg = Segment(int(steps * 0.8 * FPS))
    spread = 0.35 * _bump(seg.n, steps)
    seg.abduct[:, L_HIP], seg.abduct[:, R_HIP] = spread, -spread
    seg.velocity[:, 0] = side * 0.5 / FPS
    return seg


def turn(angle: float) -> Segment:
    """Turning in place by ``angle`` radians (+ left), small steps."""
    seg = Segment(int(abs(angle) / np.pi * 1.6 * FPS) + 8)
    seg.yaw_rate[:] = angle / seg.n
    step = 0.25 * _bump(seg.n, 2)
    seg.flex[:, L_HIP], seg.flex[:, L_KNEE] = -step, 2 * step
    return seg


def jump(count: int) -> Segment:
    seg = Segment(int(count * 0.9 * FPS))
    t = np.arange(seg.n) / seg.n * count % 1.0  # phase inside each jump
    crouch = np.where(t < 0.3, np.sin(np.pi * t / 0.3), 0.0)
    air = np.where(t >= 0.3, np.sin(np.pi * (t - 0.3) / 0.7), 0.0)
    seg.flex[:, [L_HIP, R_HIP]] = -0.9 * crouch[:, None]
    seg.flex[:, [L_KNEE, R_KNEE]] = 1.6 * crouch[:, None]
    seg.flex[:, [L_SHOULDER, R_SHOULDER]] = -2.2 * air[:, None]
    seg.lift = 0.35 * air
    return seg


def wave(count: int, right: bool) -> Segment:
    seg = Segment(int((count * 0.6 + 1.0) * FPS))
    raise_arm = np.clip(_bump(seg.n, 1) * 1.6, 0, 1)
    shoulder, elbow, sign = (R_SHOULDER, R_ELBOW, -1.0) if right else (L_SHOULDER, L_ELBOW, 1.0)
    seg.abduct[:, shoulder] = sign * 2.4 * raise_arm
    seg.abduct[:, elbow] = sign * (0.3 + 0.5 * np.sin(_phase(seg.n, count))) * raise_arm
    return seg


def squat(count: int) -> Segment:
    seg = Segment(int(count * 1.5 * FPS))
    depth = _bump(seg.n, count)
    seg.flex[:, [L_HIP, R_HIP]] = -1.4 * depth[:, None]
    seg.flex[:, [L_KNEE, R_KNEE]] = 2.0 * depth[:, None]
    seg.flex[:, [L_ANKLE, R_ANKLE]] = -0.6 * depth[:, None]
    seg.flex[:, SPINE] = 0.15 * depth[:, None]
    seg.flex[:, [L_SHOULDER, R_SHOULDER]] = -1.4 * depth[:, None]
    return seg


def kick(count: int, right: bool) -> Segment:
    seg = Segment(int(count * 1.0 * FPS))
    t = np.arange(seg.n) / seg.n * count % 1.0
    hip, knee = (R_HIP, R_KNEE) if right else (L_HIP, L_KNEE)
    seg.flex[:, hip] = -1.5 * np.sin(np.pi * t) ** 2
    seg.flex[:, knee] = 1.2 * np.where(t < 0.4, np.sin(np.pi * t / 0.4), 0.0)
    return seg


def sit_down() -> Segment:
    seg = Segment(int(2.0 * FPS))
    down = np.clip(np.arange(seg.n) / (0.7 * seg.n), 0, 1)
    down = 0.5 - 0.5 * np.cos(np.pi * down)
    seg.flex[:, [L_HIP, R_HIP]] = -1.5 * down[:, None]
    seg.flex[:, [L_KNEE, R_KNEE]] = 1.5 * down[:, None]
    seg.flex[:, SPINE] = -0.1 * down[:, None]
    return seg


def pose_skeleton(segments: list[Segment], offsets: np.ndarray | None = None) -> np.ndarray:
    """Concatenated segments -> (T, 22, 3) joints: hierarchical FK, root path from yaw and velocity, grounded."""
    offsets = bone_offsets() if offsets is None else offsets
    flex = np.concatenate([s.flex for s in segments])  # (T, 22)
    abduct = np.concatenate([s.abduct for s in segments])
    yaw = np.cumsum(np.concatenate([s.yaw_rate for s in segments]))  # (T,)
    velocity = np.concatenate([s.velocity for s in segments])  # (T, 3)
    lift = np.concatenate([s.lift for s in segments])
    # Smooth the joint curves across segment boundaries (0.25 s moving average).
    kernel = np.ones(5) / 5
    flex = np.apply_along_axis(lambda c: np.convolve(np.pad(c, 2, mode="edge"), kernel, "valid"), 0, flex)
    abduct = np.apply_along_axis(lambda c: np.convolve(np.pad(c, 2, mode="edge"), kernel, "valid"), 0, abduct)

    local = qmul(axis_angle([0.0, 0.0, 1.0], abduct), axis_angle([1.0, 0.0, 0.0], flex))  # (T, 22, 4)
    heading = axis_angle([0.0, 1.0, 0.0], yaw)  # (T, 4)
    local[:, 0] = qmul(heading, local[:, 0])
    parents = HUMANML3D.parents
    num_frames = len(yaw)
    world_rot = np.zeros((num_frames, 22, 4))
    joints = np.zeros((num_frames, 22, 3))
    world_rot[:, 0] = local[:, 0]
    for j in range(1, 22):  # parents precede children in HumanML3D's numbering
        p = parents[j]
        joints[:, j] = joints[:, p] + qrot(world_rot[:, p], np.broadcast_to(offsets[j], (num_frames, 3)))
        world_rot[:, j] = qmul(world_rot[:, p], local[:, j])
    root = np.cumsum(qrot(heading, velocity), axis=0)  # (T, 3) world path
    root[:, 1] = -joints[:, list(FEET), 1].min(axis=1) + lift
    return joints + root[:, None, :]
