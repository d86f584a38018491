"""Named voices as rows of a learned speaker embedding (multi-speaker TTS by speaker id).

Multi-speaker non-autoregressive TTS conditions on a learned embedding per
training speaker (Deep Voice 2, Arık et al. 2017, §4; FastSpeech 2 and
SimpleSpeech 2 inherit it).  Row 0 is reserved for "no named voice": a voice
given only by a reference prompt (F5-TTS's zero-shot setting, Chen et al. 2024)
and the speaker dropout that teaches the model that case.
"""

from __future__ import annotations

from collections.abc import Sequence

UNKNOWN_SPEAKER = 0  # the embedding row of an unnamed voice


class SpeakerTable:
    """Voice names ↔ embedding rows ``1..N``; ``None`` is :data:`UNKNOWN_SPEAKER`."""

    def __init__(self, names: Sequence[str]) -> None:
        names = [str(name) for name in names]
        if len(set(names)) != len(names):
            raise ValueError(f"speaker names must be unique, got {names}")
        self.names = names
        self._rows = {name: row for row, name in enumerate(names, start=1)}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def rows(self) -> int:
        """Embedding rows needed: one per voice plus the unknown voice."""
        return len(self.names) + 1

    def row(self, name: str | None) -> int:
        """The embedding row of voice ``name`` (``None`` → the unknown voice); unknown names are a ValueError."""
        if name is None:
            return UNKNOWN_SPEAKER
        if name not in self._rows:
            known = ", ".join(self.names) or "none (train on a corpus with named speakers)"
            raise ValueError(f"unknown voice {name!r}; this model knows: {known}")
        return self._rows[name]
