"""Report figures shared by the tasks: atomic PNG saving and caption wrapping for titles."""

from __future__ import annotations

import os
from pathlib import Path

from unidit.training.export import write_file_atomically


def save_figure_png(figure, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure to ``path`` as PNG atomically (temporary file in the same folder, then rename)."""
    return write_file_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))


def wrap_words(text: str, width: int) -> str:
    """Break ``text`` into lines of at most ``width`` characters at spaces (a longer word keeps its own line)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line]) if line else ""
