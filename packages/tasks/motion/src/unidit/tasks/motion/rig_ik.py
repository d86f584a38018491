"""Joint positions -> per-joint rotations of a rig: inverse kinematics on a kinematic tree.

A rig (BVH, FBX) places child ``c`` of joint ``p`` at ``x_p + G_p o_c``: ``o_c`` the child's fixed
rest offset, ``G_p`` the accumulated (global) rotation of ``p``, the product of the local rotations
from the root down. HumanML3D motions are joint positions, so each joint's rotation is recovered
from where its children went, in the rest skeleton of HumanML3D's ``paramUtil`` (Guo et al., CVPR
2022: unit raw offsets, Y up, facing +Z) with this clip's own bone lengths:

- a joint with **one child** turns the rest bone direction onto the observed one by the shortest
  arc, computed in the parent's frame: the twist about the bone is left as the parent's (zero
  relative twist), the choice HumanML3D's own IK makes, since positions carry no twist;
- a joint with **several children** (the pelvis: hips and spine; spine3: neck and collars) gets the
  rotation that best maps all its rest child offsets onto the observed ones (the orthogonal
  Procrustes / Kabsch solution, Kabsch 1976), which fixes its twist too. The rest offsets of such
  siblings keep the clip's own angles between them (:func:`rest_offsets`). Where the siblings
  move rigidly together (forward-kinematics data: the embedded set, and HumanML3D's released
  joints, whose sample clip round-trips within 3e-6 m) this is exact; otherwise (a generated
  motion whose joints come from predicted RIC channels) it is the least-squares fit, and the
  leftover shifts the limb below it;
- a **leaf** (head, hands, feet) keeps its parent's rotation (no child to orient).
"""

from __future__ import annotations

import numpy as np
from unidit.tokenizers.motion.quaternion import qbetween, quat_to_matrix
from unidit.tokenizers.motion.skeleton import HUMANML3D, SkeletonLayout


def children_of(layout: SkeletonLayout) -> list[list[int]]:
    """Each joint's children, in index order."""
    children: list[list[int]] = [[] for _ in range(layout.num_joints)]
    for joint, parent in enumerate(layout.parents):
        if parent >= 0:
            children[parent].append(joint)
    return children


def rest_offsets(joints: np.ndarray, layout: SkeletonLayout = HUMANML3D) -> np.ndarray:
    """(J, 3) rest offsets of the clip ``(T, J, 3)``.

    A bone is its unit raw direction times its median length over the clip. The children of a
    branching joint keep the angles between them that the clip shows: each frame's set of child
    offsets is turned (Procrustes) onto the raw directions and the turned sets are averaged, so
    the rest set is the clip's own sibling geometry, oriented like HumanML3D's rest pose.
    """
    parents = layout.parents
    lengths = np.zeros(layout.num_joints)
    lengths[1:] = np.median(np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1), axis=0)
    offsets = layout.raw_offsets * lengths[:, None]
    for joint, kids in enumerate(children_of(layout)):
        if len(kids) > 1:
            observed = joints[:, kids] - joints[:, joint : joint + 1]  # (T, K, 3)
            turn = procrustes(offsets[kids], observed)  # (T, 3, 3): rest -> frame
            offsets[kids] = np.einsum("tji,tkj->tki", turn, observed).mean(axis=0)  # frames turned back
    return offsets


def procrustes(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations ``R`` minimising ``sum_k |R rest_k - observed_t,k|^2``.

    ``rest`` is (K, 3), ``observed`` (T, K, 3); the sign fix keeps ``det R = +1`` (no reflections).
    """
    covariance = np.einsum("tki,kj->tij", observed, rest)  # (T, 3, 3)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))  # (T,) no reflections
    fix = np.broadcast_to(np.eye(3), covariance.shape).copy()
    fix[:, 2, 2] = np.where(sign == 0, 1.0, sign)
    return u @ fix @ vt


def local_rotations(joints: np.ndarray, offsets: np.ndarray, layout: SkeletonLayout = HUMANML3D) -> np.ndarray:
    """Joints ``(T, J, 3)`` + rest offsets ``(J, 3)`` -> local rotation matrices ``(T, J, 3, 3)``
    (parent-relative; the root's is global). Parents must precede children in the numbering."""
    num_frames, num_joints = joints.shape[:2]
    parents, children = layout.parents, children_of(layout)
    identity = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    world = np.zeros((num_frames, num_joints, 3, 3))
    local = np.zeros((num_frames, num_joints, 3, 3))
    for joint in range(num_joints):
        parent_world = world[:, parents[joint]] if parents[joint] >= 0 else identity  # (T, 3, 3)
        kids = children[joint]
        if not kids:
            world[:, joint], local[:, joint] = parent_world, identity
            continue
        bones = joints[:, kids] - joints[:, joint : joint + 1]  # (T, K, 3) observed child offsets
        if len(kids) == 1:
            in_parent = np.einsum("tji,tj->ti", parent_world, bones[:, 0])  # (T, 3): G_p^T bone
            turn = quat_to_matrix(qbetween(np.broadcast_to(offsets[kids[0]], in_parent.shape), in_parent))
            moved = np.linalg.norm(in_parent, axis=-1) > 1e-9  # a zero-length bone keeps the rest direction
            local[:, joint] = np.where(moved[:, None, None], turn, identity)
            world[:, joint] = parent_world @ local[:, joint]
        else:
            world[:, joint] = procrustes(offsets[kids], bones)
            local[:, joint] = np.swapaxes(parent_world, -1, -2) @ world[:, joint]
    return local
