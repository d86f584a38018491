"""One PNG of spectrogram panels, one per clip (shared by the t2a and tts media writers).

The figure plumbing both audio tasks share: matplotlib (Agg) imported lazily
so importing a task does not pull it in, a grid of panels with time in
seconds along x, the PNG written atomically and the figure always closed.
What each panel shows (mel settings, colours, titles, marks) is the task's
``draw(axis, clip, title)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from unidit.training.figures import save_figure_png


def render_panels_png(clips: list[np.ndarray], titles: list[str], path: str | os.PathLike,
                      draw: Callable[[object, np.ndarray, str], None], *, rows: int, cols: int,
                      figsize: tuple[float, float], dpi: int, ylabel: str) -> Path:
    """``draw`` each clip and title on its own axis of a ``rows`` × ``cols`` grid (spare axes hidden)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not clips or len(clips) != len(titles):
        raise ValueError(f"need one title per clip and at least one clip, got {len(clips)} clips, {len(titles)} titles")
    figure, axes = plt.subplots(rows, cols, figsize=figsize, dpi=dpi, squeeze=False)
    try:
        for axis in axes.flat[len(clips):]:
            axis.axis("off")
        for axis, clip, title in zip(axes.flat, clips, titles):
            draw(axis, clip, title)
            axis.set_xlabel("seconds", fontsize=7)
            axis.set_ylabel(ylabel, fontsize=7)
            axis.tick_params(labelsize=6)
        figure.tight_layout()
        return save_figure_png(figure, path)
    finally:
        plt.close(figure)
