"""Writing clips as media: an mp4 per clip, a frame-strip PNG per clip, one overview PNG.

Papers show generated video as frame strips (e.g. LTX-Video, HaCohen et al.
2024, Fig. 1); the strips here are plain image rows of every ``every``-th
frame drawn with matplotlib (Agg, imported lazily), titled with the caption.
Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from unidit.tokenizers.video_io import write_mp4
from unidit.training.figures import save_figure_png

GAP = 2  # pixels between frames in a strip


def _as_clip(clip) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"each clip must be uint8 (F, H, W, 3), got {clip.dtype} {clip.shape}")
    return clip


def strip(clip: np.ndarray, every: int = 2) -> np.ndarray:
    """Every ``every``-th frame of a ``(F, H, W, 3)`` clip side by side: ``(H, n*W + (n-1)*GAP, 3)`` uint8."""
    frames = _as_clip(clip)[::every]  # (n, H, W, 3)
    n, height, width, _ = frames.shape
    out = np.full((height, n * width + (n - 1) * GAP, 3), 255, dtype=np.uint8)
    for k, frame in enumerate(frames):  # a handful of frames, not a hot path
        out[:, k * (width + GAP) : k * (width + GAP) + width] = frame
    return out


def write_strips_png(path: str | os.PathLike, clips: list, titles: list[str], every: int = 2,
                     dpi: int = 100) -> Path:
    """One frame strip per clip, stacked in rows with its title above, in one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not clips or len(clips) != len(titles):
        raise ValueError(f"need one title per clip and at least one clip, got {len(clips)} clips, {len(titles)} titles")
    strips = [strip(clip, every) for clip in clips]
    height, width = strips[0].shape[:2]
    figure, axes = plt.subplots(len(strips), 1, squeeze=False,
                                figsize=(width / dpi * 1.6, len(strips) * (height / dpi * 1.6 + 0.3)), dpi=dpi)
    try:
        for axis, image, title in zip(axes[:, 0], strips, titles):
            axis.imshow(image, interpolation="nearest")
            axis.set_title(title, fontsize=8, loc="left")
            axis.axis("off")
        figure.tight_layout()
        return save_figure_png(figure, path)
    finally:
        plt.close(figure)


def write_clips(out: str | os.PathLike, clips: list, captions: list[str], names: list[str], fps: float = 8.0,
                every: int = 2) -> list[Path]:
    """``<name>.mp4`` and ``<name>.png`` (its frame strip) per clip, and ``samples.png`` with every strip."""
    if not (len(clips) == len(captions) == len(names)):
        raise ValueError(f"got {len(clips)} clips, {len(captions)} captions and {len(names)} names")
    out = Path(out)
    written = []
    for clip, caption, name in zip(clips, captions, names):
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "clip"
        written.append(write_mp4(out / f"{stem}.mp4", _as_clip(clip), fps))
        write_strips_png(out / f"{stem}.png", [clip], [caption], every)
    write_strips_png(out / "samples.png", clips, captions, every)
    return written
