"""What a task's evaluation hands back, and the report files every task writes the same way.

``unidit fit <task>`` ends with a report and ``unidit eval <task>`` prints the
same one: a task's evaluation returns an :class:`Evaluation` (the metrics, the
table printed for people, and a writer for the report folder), and the app
layer does the printing and writing. ``metrics.json`` is written atomically;
sample file names come from :func:`caption_slug`; which samples are written
comes from :func:`spread_indices`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from unidit.training.export import write_file_atomically

METRICS_FILE = "metrics.json"


@dataclass
class Evaluation:
    """One evaluation's results.

    Attributes:
        metrics: JSON-serialisable metrics (what ``metrics.json`` holds).
        table: the plain-text table printed to the terminal.
        write_samples: writes the samples chosen for the report (media files) into a folder.
        summary: one line saying what ``write_samples`` writes, e.g. ".ply samples and samples.png".
    """

    metrics: dict
    table: str
    write_samples: Callable[[Path], None]
    summary: str = "samples"

    def write(self, folder: str | os.PathLike) -> Path:
        """``metrics.json`` (atomically) and the samples, into ``folder``."""
        folder = Path(folder)
        write_json_atomically(folder / METRICS_FILE, self.metrics)
        self.write_samples(folder)
        return folder


def write_json_atomically(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented JSON to ``path`` through a temporary file renamed into place."""
    return write_file_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2)))


def spread_indices(total: int, count: int) -> list[int]:
    """Up to ``count`` indices spread evenly over ``range(total)``, first and last included.

    The evaluation sets are ordered by kind or attribute, so an even spread
    writes samples of every kind.
    """
    count = max(0, min(count, total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count)}) if count else []


def caption_slug(text: str, limit: int = 60) -> str:
    """A file-name-safe, lower-case version of a caption (at most ``limit`` characters)."""
    keep = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(part for part in keep.split("_") if part)[:limit]


def sample_names(captions: list[str]) -> list[str]:
    """``00_a_large_torus``, ``01_…``: numbered slugs, unique even when captions repeat."""
    return [f"{number:02d}_{caption_slug(caption)}" for number, caption in enumerate(captions)]
