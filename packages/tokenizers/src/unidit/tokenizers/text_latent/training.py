"""Fitting the text-latent tokenizer: latent statistics, the decoder head, round-trip figures.

LaDiC (Wang et al. 2024, §3.1) normalises the BERT latents per dimension with
the mean and standard deviation of the training captions and trains the read-out
with token cross-entropy.  The statistics here are taken over every one of the
``length`` positions (fill positions included), since a diffusion model
generates all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from unidit.tokenizers.text_latent.latents import CaptionLatents, caption_latents, compute_raw
from unidit.tokenizers.text_latent.model import TextLatentTokenizer


def _latents(tokenizer: TextLatentTokenizer, data: CaptionLatents | Sequence[str], what: str) -> CaptionLatents:
    if isinstance(data, CaptionLatents):
        return data
    if not data:
        raise ValueError(f"{what}: no captions given; expected at least one training caption")
    return caption_latents(tokenizer, data)


@torch.no_grad()
def raw_latents(tokenizer: TextLatentTokenizer, captions: Sequence[str], batch_size: int = 256
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids (N, L), raw latents (N, L, D))`` of every caption (repeats kept), in batches."""
    ids = tokenizer.token_ids(captions)
    return ids, compute_raw(tokenizer, ids, batch_size)


@torch.no_grad()
def fit_statistics(tokenizer: TextLatentTokenizer, data: CaptionLatents | Sequence[str]) -> dict:
    """Set ``latent_mean`` / ``latent_std`` (per dimension) from captions or their precomputed latents.

    With captions, repeats are dropped first (:func:`caption_latents`): the statistics are
    those of the distinct training captions. Returns a summary.
    """
    latents = _latents(tokenizer, data, "fit_statistics")
    flat = latents.raw.reshape(-1, latents.raw.shape[-1])  # (N * L, D)
    tokenizer.latent_mean.copy_(flat.mean(0))
    tokenizer.latent_std.copy_(flat.std(0).clamp_min(1e-6))
    return {"captions": len(latents), "positions": int(flat.shape[0]),
            "raw_std_mean": float(flat.std(0).mean()), "raw_mean_abs": float(flat.mean(0).abs().mean())}


@dataclass
class DecoderTraining:
    """Head training on captions (token cross-entropy over all ``length`` positions, AdamW).

    Attributes:
        steps: optimiser steps.
        batch_size: captions per step.
        lr: AdamW learning rate (constant after a linear warm-up of ``steps // 10``).
        weight_decay: AdamW weight decay.
        seed: seeds the caption order.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0


def train_decoder(tokenizer: TextLatentTokenizer, data: CaptionLatents | Sequence[str],
                  options: DecoderTraining | None = None) -> list[float]:
    """Train the head (and the upper layers if ``train_upper``) to read latents back to tokens.

    ``data`` is captions or their :func:`caption_latents` (pass those to share one
    lower-layer pass between the statistics and every decoder variant). With frozen
    upper layers their output is precomputed too, so a step costs only the head.
    Returns the loss per step.
    """
    options = options or DecoderTraining()
    if options.steps < 1 or options.batch_size < 1:
        raise ValueError(f"train_decoder: steps and batch_size must be positive, got {options.steps}, "
                         f"{options.batch_size}")
    data = _latents(tokenizer, data, "train_decoder")
    ids = data.ids
    latents = (data.raw - tokenizer.latent_mean) / tokenizer.latent_std  # (N, L, D)
    frozen_upper = not tokenizer.train_upper
    if frozen_upper:
        with torch.no_grad():
            features = torch.cat([tokenizer.decoder_features(latents[i : i + 256]) for i in range(0, len(latents), 256)])
    targets = tokenizer.targets(ids)  # (N, L)
    params = [p for p in tokenizer.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    warmup = max(1, options.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / warmup))
    generator = torch.Generator().manual_seed(options.seed)
    order, cursor, losses = torch.randperm(len(ids), generator=generator), 0, []
    tokenizer.train()
    for _ in range(options.steps):
        if cursor + options.batch_size > len(order):
            order, cursor = torch.randperm(len(ids), generator=generator), 0
        batch = order[cursor : cursor + options.batch_size]
        cursor += options.batch_size
        logits = tokenizer.head(features[batch]) if frozen_upper else tokenizer.logits(latents[batch])  # (b, L, V')
        loss = F.cross_entropy(logits.flatten(0, 1), targets[batch].flatten(), ignore_index=-100)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    tokenizer.eval()
    return losses


@torch.no_grad()
def roundtrip_metrics(tokenizer: TextLatentTokenizer, captions: Sequence[str], batch_size: int = 256) -> dict:
    """Encode then decode ``captions``: exact-caption rate and token accuracy.

    Token accuracy counts the caption positions (``[CLS]`` … first ``[SEP]``), not the
    ``"."`` fill; exact means the decoded text equals the caption as the tokenizer
    normalises it (lower-cased, cut to ``length``). Also the encode+decode time per caption.
    """
    if not captions:
        raise ValueError("roundtrip_metrics: no captions given")
    ids = tokenizer.token_ids(captions)
    start = time.perf_counter()
    decoded = torch.cat([tokenizer.decode_ids(tokenizer.encode_ids(ids[i : i + batch_size]))
                         for i in range(0, len(ids), batch_size)])
    seconds = time.perf_counter() - start
    mask = tokenizer.caption_mask(ids)
    correct = ((decoded == ids) & mask).sum()
    texts, references = tokenizer.ids_to_text(decoded), tokenizer.ids_to_text(ids)
    exact = sum(a == b for a, b in zip(texts, references))
    return {"captions": len(captions), "exact_caption_rate": exact / len(captions),
            "token_accuracy": float(correct) / float(mask.sum()),
            "ms_per_caption": 1000 * seconds / len(captions), "decoder": tokenizer.decoder}
