"""Lower-layer latents of a caption set, computed once per distinct caption and cached on disk.

Fitting the text-latent tokenizer (LaDiC, Wang et al. 2024, §3.1) needs the
frozen lower BERT layers' output of every training caption twice — for the
normalisation statistics and as the decoder's training input — and once more
per decoder variant. The lower layers are the slow part (a caption costs three
transformer layers, the head a single small matrix), so they run once:

* captions are reduced to their distinct token-id rows (the scene captions
  repeat, and case variants tokenise alike);
* the raw latents ``(N, L, D)`` are stored in
  ``<cache_dir>/raw-<key>.safetensors``, where the key hashes the lower
  weights (embeddings + lower layers) and the token ids, so another BERT,
  split or caption set never reads a stale file. A damaged file is recomputed;
  a cache that cannot be written only costs the computation next time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from unidit.tokenizers.text_latent.model import TextLatentTokenizer


@dataclass
class CaptionLatents:
    """Distinct captions as token ids ``(N, L)`` and their raw lower-layer latents ``(N, L, D)``."""

    ids: Tensor
    raw: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]


def distinct_ids(tokenizer: TextLatentTokenizer, captions: Sequence[str]) -> Tensor:
    """``(N, L)`` token-id rows of ``captions`` with repeats removed, in order of first appearance."""
    if not captions:
        raise ValueError("no captions given; expected at least one caption")
    ids = tokenizer.token_ids(captions)  # (B, L)
    seen: dict[tuple[int, ...], int] = {}
    for k, row in enumerate(ids.tolist()):
        seen.setdefault(tuple(row), k)
    return ids[list(seen.values())]


def lower_fingerprint(tokenizer: TextLatentTokenizer) -> str:
    """SHA-256 of everything the raw latents depend on: the embedding and lower-layer weights, the length."""
    digest = hashlib.sha256(f"text-latent-raw-v1|{tokenizer.split_layer}|{tokenizer.length}".encode())
    for module in (tokenizer.embeddings, tokenizer.lower):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def compute_raw(tokenizer: TextLatentTokenizer, ids: Tensor, batch_size: int = 256) -> Tensor:
    """``(N, L)`` ids -> ``(N, L, D)`` raw lower-layer latents, in batches."""
    return torch.cat([tokenizer.raw_latents(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)])


def caption_latents(tokenizer: TextLatentTokenizer, captions: Sequence[str], cache_dir: str | os.PathLike | None = None,
                    limit: int | None = None, seed: int = 0, batch_size: int = 256) -> CaptionLatents:
    """Raw latents of the distinct ``captions``; read from / written to ``cache_dir`` when one is given.

    ``limit`` keeps a random subset (drawn with ``seed``, kept in order) of at most that many distinct captions.
    """
    ids = distinct_ids(tokenizer, captions)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of captions or None, got {limit}")
    if limit is not None and limit < len(ids):
        keep = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
        ids = ids[keep]
    if cache_dir is None:
        return CaptionLatents(ids, compute_raw(tokenizer, ids, batch_size))
    digest = hashlib.sha256(lower_fingerprint(tokenizer).encode())
    digest.update(ids.cpu().numpy().tobytes())
    file = Path(cache_dir) / f"raw-{digest.hexdigest()[:24]}.safetensors"
    if file.is_file():
        try:
            saved = load_file(str(file))
            if torch.equal(saved["ids"], ids.cpu()):
                return CaptionLatents(ids, saved["raw"].to(ids.device))
        except (OSError, KeyError, SafetensorError):
            pass  # damaged cache: compute again
    raw = compute_raw(tokenizer, ids, batch_size)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        staging = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        save_file({"ids": ids.cpu().contiguous(), "raw": raw.cpu().contiguous()}, str(staging))
        os.replace(staging, file)
    except OSError:
        pass  # caching is an optimisation
    return CaptionLatents(ids, raw)
