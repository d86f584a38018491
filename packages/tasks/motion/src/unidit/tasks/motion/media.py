"""Motion samples as files: features and joints ``.npy``, a ``.bvh`` rig, a stick-figure mp4 (and gif) per sample, a frame strip.

Joints come from the features' RIC channels (:func:`~unidit.tokenizers.motion.recover_from_ric`,
HumanML3D's decoder). The stick figure is seen from the side (camera on the X axis: the body's
starting forward direction +Z to the right, Y up) at one scale for the whole clip, so the root's
path stays visible; HumanML3D's five kinematic chains get five colours. Frames are drawn with
plain numpy and written by the tokenizers' mp4 writer (and as a gif when Pillow is installed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from unidit.tasks.motion.bvh import write_bvh
from unidit.tokenizers.motion import HUMANML3D, KIT, recover_from_ric
from unidit.tokenizers.motion.skeleton import T2M_JOINT_NAMES
from unidit.tokenizers.video_io import write_mp4
from unidit.training.report import sample_names

CHAIN_COLOURS = np.array([[220, 60, 60], [60, 90, 220], [40, 40, 40], [230, 140, 30], [40, 160, 90]], np.uint8)


def layout_for(num_joints: int):
    """The skeleton of a joint count: 22 HumanML3D, 21 KIT-ML."""
    layouts = {22: HUMANML3D, 21: KIT}
    if num_joints not in layouts:
        raise ValueError(f"num_joints: expected 22 (HumanML3D) or 21 (KIT-ML), got {num_joints}")
    return layouts[num_joints]


def joint_names(num_joints: int) -> tuple[str, ...]:
    """BVH joint names: HumanML3D's for 22 joints, ``joint_<i>`` for KIT-ML's 21 (the tree has no names here)."""
    return T2M_JOINT_NAMES if num_joints == 22 else tuple(f"joint_{i}" for i in range(num_joints))


def project(joints: np.ndarray, size: int, view: str = "side") -> np.ndarray:
    """(T, J, 3) metres -> (T, J, 2) pixel (column, row) coordinates, one scale for the whole clip.

    ``side`` looks along the X axis (Z right, Y up), ``front`` along Z (X right, Y up). The clip's
    bounding box (with a margin) fills the picture; the ground (y = 0) stays the lowest line.
    """
    horizontal = joints[..., 2] if view == "side" else joints[..., 0]  # (T, J)
    vertical = joints[..., 1]  # (T, J)
    low_h, high_h = float(horizontal.min()), float(horizontal.max())
    low_v, high_v = min(float(vertical.min()), 0.0), float(vertical.max())
    span = max(high_h - low_h, high_v - low_v, 1e-3) * 1.15
    centre_h = 0.5 * (low_h + high_h)
    columns = (horizontal - centre_h) / span * size + size / 2
    rows = size - ((vertical - low_v) / span * size + 0.05 * size)
    return np.stack([columns, rows], axis=-1)  # (T, J, 2)


def draw_line(canvas: np.ndarray, start: np.ndarray, end: np.ndarray, colour: np.ndarray, width: int = 2) -> None:
    """Rasterise a segment onto ``canvas`` (H, W, 3) in place, ``width`` pixels thick."""
    steps = int(max(abs(end - start).max(), 1)) * 2
    points = start[None] + (end - start)[None] * np.linspace(0, 1, steps + 1)[:, None]  # (S, 2)
    height, width_px = canvas.shape[:2]
    for dy in range(-(width // 2), width - width // 2):
        for dx in range(-(width // 2), width - width // 2):
            cols = np.clip(np.round(points[:, 0]).astype(int) + dx, 0, width_px - 1)
            rows = np.clip(np.round(points[:, 1]).astype(int) + dy, 0, height - 1)
            canvas[rows, cols] = colour


def render_stick_figure(joints: np.ndarray, size: int = 256, view: str = "side") -> np.ndarray:
    """(T, J, 3) joints -> (T, size, size, 3) uint8 frames of the skeleton on a white ground."""
    layout = layout_for(joints.shape[1])
    pixels = project(np.asarray(joints, dtype=np.float64), size, view)  # (T, J, 2)
    ground = int(round(size - 0.05 * size))
    frames = np.full((len(joints), size, size, 3), 255, np.uint8)
    frames[:, min(ground, size - 1)] = 200
    for frame, points in zip(frames, pixels):
        for chain, colour in zip(layout.chains, CHAIN_COLOURS):
            for parent, child in zip(chain[:-1], chain[1:]):
                draw_line(frame, points[parent], points[child], colour, width=3)
    return frames


def frame_strip(frames: np.ndarray, count: int = 8) -> np.ndarray:
    """``count`` frames spread over the clip, side by side ``(H, count·W, 3)``."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.concatenate([frames[i] for i in picks], axis=1)


def write_motion(folder: Path, name: str, features: np.ndarray, fps: float, num_joints: int = 22,
                 size: int = 256) -> dict[str, Path]:
    """``<name>.npy`` (features), ``<name>_joints.npy``, ``<name>.bvh`` (:func:`~unidit.tasks.motion.bvh.write_bvh`),
    ``<name>.mp4`` (+ ``<name>.gif`` with Pillow); the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    joints = recover_from_ric(np.asarray(features, dtype=np.float32), num_joints)  # (T, J, 3)
    written = {"features": folder / f"{name}.npy", "joints": folder / f"{name}_joints.npy"}
    np.save(written["features"], np.asarray(features, dtype=np.float32))
    np.save(written["joints"], joints.astype(np.float32))
    written["bvh"] = write_bvh(folder / f"{name}.bvh", joints, fps, layout_for(num_joints), joint_names(num_joints))
    frames = render_stick_figure(joints, size)
    written["mp4"] = write_mp4(folder / f"{name}.mp4", frames, fps)
    gif = write_gif(folder / f"{name}.gif", frames, fps)
    if gif is not None:
        written["gif"] = gif
    return written


def write_gif(path: Path, frames: np.ndarray, fps: float) -> Path | None:
    """An animated gif of uint8 frames, or None when Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError:
        return None
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return path


def write_motions(folder: Path, motions: list[np.ndarray], captions: list[str], fps: float,
                  num_joints: int = 22) -> list[dict[str, Path]]:
    """Every motion as :func:`write_motion` files named after its caption, plus ``captions.txt`` and
    ``strip.png`` (with Pillow: eight frames of the first motion side by side)."""
    folder = Path(folder)
    names = sample_names(captions)
    written = [write_motion(folder, name, motion, fps, num_joints) for name, motion in zip(names, motions)]
    (folder / "captions.txt").write_text("".join(f"{name}: {caption}\n" for name, caption in zip(names, captions)))
    if motions:
        try:
            from PIL import Image

            joints = recover_from_ric(np.asarray(motions[0], dtype=np.float32), num_joints)
            Image.fromarray(frame_strip(render_stick_figure(joints, 160))).save(folder / "strip.png")
        except ImportError:
            pass
    return written
