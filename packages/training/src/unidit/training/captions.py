"""The one caption rule every task's loaders apply: non-empty, and short enough for the text encoder."""

from __future__ import annotations

MAX_CAPTION_CHARS = 256  # the text encoder keeps 64 tokens (~4 characters each); longer text would be cut silently


def check_caption(text: str | None, where: str) -> str:
    """A stripped caption, or a ValueError naming ``where`` if it is empty or longer than MAX_CAPTION_CHARS."""
    text = (text or "").strip()
    if not text:
        raise ValueError(f"{where}: empty caption; expected 1 to {MAX_CAPTION_CHARS} characters")
    if len(text) > MAX_CAPTION_CHARS:
        raise ValueError(
            f"{where}: caption of {len(text)} characters; expected at most {MAX_CAPTION_CHARS} "
            "(the text encoder reads 64 tokens)"
        )
    return text
