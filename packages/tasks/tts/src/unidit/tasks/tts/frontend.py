"""What a line to speak becomes before the network: one row of context ids.

A :class:`Line` is a transcript and (optionally) a named voice.  The
:class:`TextFrontend` turns it into the ids the denoiser embeds (its
``context``, ``(B, S, 1)`` long, so the kit's caption plumbing — caption
dropout, the doubled CFG batch, padding — carries it unchanged):

``[speaker token, text token 1, …, text token n]``

Text tokens are the sentencepiece ids of the transcript (characters or BPE
pieces, :mod:`unidit.tasks.tts.text`), as E2-TTS and F5-TTS condition on raw
characters with no phoneme alignment (Eskimez et al. 2024, §3; Chen et al.
2024, §3.2).  The speaker token is ``vocab + row`` of the voice's
:class:`~unidit.tasks.tts.speakers.SpeakerTable` row, so the text encoder
attends to the voice too (the duration predictors then see who speaks).  The
null caption ``""`` of caption dropout becomes the single :attr:`null_id`, the
unconditional input of classifier-free guidance.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from unidit.tasks.tts.speakers import SpeakerTable

NULL_CAPTION = ""  # FlowMatchingTask's dropped caption


class Line(NamedTuple):
    """A transcript to speak, and the named voice to speak it in (None: only a prompt gives the voice).

    A named tuple, so Lightning moves batches of lines to a device untouched.
    """

    text: str
    speaker: str | None = None


class TextFrontend:
    """Lines → context ids ``(B, S, 1)`` and their mask ``(B, S)`` (see the module docstring).

    Args:
        tokenizer: a :class:`unidit.tasks.tts.text.TextTokenizer` (``encode``, ``vocab_size``).
        speakers: the named voices.
    """

    def __init__(self, tokenizer, speakers: SpeakerTable) -> None:
        self.tokenizer = tokenizer
        self.speakers = speakers
        self.vocab = int(tokenizer.vocab_size)

    @property
    def null_id(self) -> int:
        return self.vocab + self.speakers.rows

    @property
    def num_ids(self) -> int:
        """Rows of the context embedding: text tokens, speaker tokens, the null token."""
        return self.vocab + self.speakers.rows + 1

    def text_ids(self, text: str) -> list[int]:
        """Token ids of ``text``; the tokenizer refuses (ValueError) empty text and text it knows no character of."""
        return [int(i) for i in self.tokenizer.encode(text)]

    def ids(self, line: Line | str) -> list[int]:
        """``[speaker token, text ids…]`` of a line, or ``[null]`` for the dropped caption."""
        if isinstance(line, str):
            if line != NULL_CAPTION:
                return [self.vocab + self.speakers.row(None), *self.text_ids(line)]
            return [self.null_id]
        return [self.vocab + self.speakers.row(line.speaker), *self.text_ids(line.text)]

    def __call__(self, lines: list[Line | str]) -> tuple[Tensor, Tensor]:
        """Right-padded ids ``(B, S, 1)`` long and mask ``(B, S)`` bool of ``lines``."""
        rows = [self.ids(line) for line in lines]
        length = max(len(row) for row in rows)
        ids = torch.zeros(len(rows), length, 1, dtype=torch.long)  # (B, S, 1)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)  # (B, S)
        for b, row in enumerate(rows):
            ids[b, : len(row), 0] = torch.tensor(row)
            mask[b, : len(row)] = True
        return ids, mask
