"""Sentence-duration predictors: how long an utterance lasts, from its text encoding alone.

Non-autoregressive TTS without alignment must decide the total length before
sampling.  SimpleSpeech 2 (Yang et al. 2024, §3.4) predicts one duration per
sentence from the text; F5-TTS (Chen et al. 2024, §3.3) and E2-TTS take it from
a ratio of character counts; FastSpeech 2 (Ren et al. 2021, §2.3) predicts
one duration per token and sums them.  Two predictors share the text
encoder's hidden states here and are trained beside the flow loss:

- ``sentence``: a regression head on the masked mean of the encoding, giving
  log seconds (SimpleSpeech 2's sentence duration);
- ``tokens``: a head giving every text token a positive duration; their sum is
  the utterance's.  Only the sum is supervised (there is no alignment), so
  the per-token values are free to split the total as the text suggests.

Both are trained on ``(log predicted − log true seconds)²``; log seconds make
an error of 10% cost the same for short and long utterances.  They start at
the training corpus' mean (:meth:`DurationPredictors.calibrate`) so the
flow loss is not swamped by the duration loss early on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

PREDICTORS = ("sentence", "tokens")
Predictor = Literal["sentence", "tokens"]


@dataclass
class LogDurations:
    """Log seconds ``(B,)`` of each utterance by each predictor."""

    sentence: Tensor
    tokens: Tensor

    def of(self, predictor: str) -> Tensor:
        if predictor not in PREDICTORS:
            raise ValueError(f"duration predictor must be one of {PREDICTORS}, got {predictor!r}")
        return getattr(self, predictor)


def _head(dim: int, hidden: int) -> nn.Sequential:
    head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
    nn.init.zeros_(head[-1].weight)
    nn.init.zeros_(head[-1].bias)
    return head


class DurationPredictors(nn.Module):
    """Both sentence-duration predictors over text hidden states ``(B, S, dim)``.

    Args:
        dim: width of the text encoding.
        hidden: width of each head's hidden layer.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.sentence_head = _head(dim, hidden)
        self.token_head = _head(dim, hidden)
        # Priors in log seconds (sentence) and log seconds per token, set from the training corpus.
        self.register_buffer("log_seconds_prior", torch.zeros(()))
        self.register_buffer("log_token_seconds_prior", torch.zeros(()))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def calibrate(self, log_seconds: float, log_token_seconds: float) -> None:
        """Start from the corpus: mean log seconds per utterance and per text token."""
        self.log_seconds_prior.fill_(float(log_seconds))
        self.log_token_seconds_prior.fill_(float(log_token_seconds))
        self.calibrated.fill_(True)

    def forward(self, hidden: Tensor, mask: Tensor, text_mask: Tensor) -> LogDurations:
        """``hidden`` (B, S, D); ``mask`` (B, S) every real context token; ``text_mask`` (B, S) the text tokens."""
        weight = mask[..., None].to(hidden.dtype)  # (B, S, 1)
        pooled = (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)  # (B, D)
        sentence = self.log_seconds_prior + self.sentence_head(pooled)[:, 0]  # (B,)
        per_token = self.log_token_seconds_prior + self.token_head(hidden)[..., 0]  # (B, S) log seconds
        per_token = per_token.masked_fill(~text_mask, float("-inf"))  # (B, S)
        return LogDurations(sentence=sentence, tokens=torch.logsumexp(per_token, dim=1))  # (B,) each


def duration_losses(predicted: LogDurations, seconds: Tensor) -> dict[str, Tensor]:
    """Mean squared error in log seconds of each predictor against the true durations ``seconds`` (B,)."""
    target = seconds.clamp(min=1e-3).log()  # (B,)
    return {name: (predicted.of(name) - target).pow(2).mean() for name in PREDICTORS}
