"""Report figures shared by the tasks: atomic PNG saving and caption wrapping for titles."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def save_figure_png(figure, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure to ``path`` as PNG atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        figure.savefig(tmp, format="png")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
