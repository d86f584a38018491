"""Fit every decoder variant of the text-latent tokenizer from one pass of the lower layers.

LaDiC (Wang et al. 2024, §3.1) decodes latents with the upper BERT layers + an
LM head; its released code in effect uses the head alone. Both variants share
the frozen embeddings and lower layers, hence the same latents and the same
normalisation statistics: those are computed once (and cached,
:func:`unidit.tokenizers.text_latent.latents.caption_latents`), then each
variant trains only its own read-out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from unidit.tokenizers.text_latent.latents import caption_latents
from unidit.tokenizers.text_latent.model import DECODERS, TextLatentTokenizer
from unidit.tokenizers.text_latent.training import DecoderTraining, fit_statistics, train_decoder


@dataclass
class FittedVariant:
    """One trained variant, its loss curve and the seconds its own training took."""

    tokenizer: TextLatentTokenizer
    losses: list[float]
    seconds: float


@dataclass
class VariantFit:
    """What the shared part of the fit did: the latents' pass, the statistics, then every variant."""

    variants: dict[str, FittedVariant]
    statistics: dict
    latent_seconds: float
    captions: int


def fit_variants(captions: Sequence[str], decoders: Sequence[str] = DECODERS, *, bert: str | None = None,
                 split_layer: int = 3, length: int = 24, train_upper: bool = False,
                 vocab_ids: list[int] | None = None, training: DecoderTraining | None = None,
                 max_captions: int | None = None, cache_dir: str | os.PathLike | None = None) -> VariantFit:
    """Train one tokenizer per decoder variant on ``captions``.

    ``max_captions`` caps the distinct training captions (a seeded subset, ``training.seed``);
    ``cache_dir`` holds the raw latents between runs. Returns the trained tokenizers (eval mode).
    """
    decoders = list(dict.fromkeys(decoders))
    if not decoders:
        raise ValueError("decoders: empty; expected one or more of " + ", ".join(DECODERS))
    training = training or DecoderTraining()
    variants: dict[str, FittedVariant] = {}
    latents = statistics = None
    latent_seconds = 0.0
    for decoder in decoders:
        tokenizer = TextLatentTokenizer(bert, split_layer, length, decoder, train_upper, vocab_ids)
        if latents is None:
            start = time.perf_counter()
            latents = caption_latents(tokenizer, captions, cache_dir, limit=max_captions, seed=training.seed)
            latent_seconds = time.perf_counter() - start
        statistics = fit_statistics(tokenizer, latents)  # the same numbers for every variant
        start = time.perf_counter()
        losses = train_decoder(tokenizer, latents, training)
        variants[decoder] = FittedVariant(tokenizer, losses, time.perf_counter() - start)
    return VariantFit(variants, statistics, latent_seconds, len(latents))
