"""Writing point clouds as media: a PNG contact sheet and PLY files.

DiT-3D (Mo et al. 2023) and PVD (Zhou et al. 2021) show samples as rendered
point clouds; here a grid of matplotlib 3D scatters (Agg backend, imported
lazily so that importing the task does not pull in matplotlib) with fixed
axis limits, so sizes compare across panels, and y drawn as the vertical axis
to match the shape frame of :mod:`unidit.tasks.shape3d.primitives`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from unidit.tokenizers.meshes import write_ply
from unidit.training.figures import save_figure_png, wrap_words


def _as_cloud(cloud) -> np.ndarray:
    if hasattr(cloud, "detach"):
        cloud = cloud.detach().cpu().numpy()
    cloud = np.asarray(cloud, dtype=np.float32)
    if cloud.ndim != 2 or cloud.shape[1] != 3:
        raise ValueError(f"each cloud must be (N, 3), got {cloud.shape}")
    return cloud


def render_clouds_png(
    clouds: list,
    titles: list[str] | None,
    path: str | os.PathLike,
    cols: int = 4,
    limit: float = 1.0,
    point_size: float = 1.5,
    dpi: int = 100,
) -> Path:
    """Render clouds ``[(N, 3), ...]`` into one PNG grid, written atomically.

    Args:
        clouds: point clouds (numpy arrays or tensors).
        titles: one title per cloud (wrapped when long), or None.
        path: destination ``.png``.
        cols: panels per row.
        limit: every axis spans ``[-limit, limit]``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    clouds = [_as_cloud(c) for c in clouds]
    if not clouds:
        raise ValueError("render_clouds_png needs at least one cloud")
    titles = list(titles) if titles is not None else [""] * len(clouds)
    if len(titles) != len(clouds):
        raise ValueError(f"got {len(clouds)} clouds but {len(titles)} titles")
    cols = max(1, min(cols, len(clouds)))
    rows = math.ceil(len(clouds) / cols)
    figure = plt.figure(figsize=(3.0 * cols, 3.2 * rows), dpi=dpi)
    try:
        for i, (cloud, title) in enumerate(zip(clouds, titles)):
            axes = figure.add_subplot(rows, cols, i + 1, projection="3d")
            axes.scatter(cloud[:, 0], cloud[:, 1], cloud[:, 2], s=point_size, c=cloud[:, 1], cmap="viridis",
                         vmin=-limit, vmax=limit, linewidths=0)
            axes.view_init(elev=20, azim=-60, vertical_axis="y")
            axes.set_xlim(-limit, limit)
            axes.set_ylim(-limit, limit)
            axes.set_zlim(-limit, limit)
            axes.set_box_aspect((1, 1, 1))
            axes.set_xticks([]), axes.set_yticks([]), axes.set_zticks([])
            axes.set_title(wrap_words(title, 32), fontsize=8)
        figure.tight_layout()
        return save_figure_png(figure, path)
    finally:
        plt.close(figure)


def write_clouds_ply(directory: str | os.PathLike, clouds: list, names: list[str]) -> list[Path]:
    """Write each cloud as ``<directory>/<name>.ply`` (binary little-endian)."""
    if len(clouds) != len(names):
        raise ValueError(f"got {len(clouds)} clouds but {len(names)} names")
    directory = Path(directory)
    paths = []
    for cloud, name in zip(clouds, names):
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "cloud"
        paths.append(write_ply(directory / f"{stem}.ply", _as_cloud(cloud)))
    return paths
