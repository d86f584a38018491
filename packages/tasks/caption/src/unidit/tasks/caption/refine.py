"""Back&Refine: re-generate the least confident tokens of a sampled caption (LaDiC, Wang et al. 2024, §3.3).

After a caption's latents are sampled, the tokenizer's decoder gives each
position a confidence (its largest token probability). The least confident
fraction is sent back to noise and generated again while the other positions
are held clean — the held-token mechanism every unidit task uses for
in-painting (:class:`~unidit.backbones.held_tokens.Conditioning`). The
denoiser learns to fill held-out positions when trained with ``hold_prob > 0``
(some positions of some captions held clean, as in-painting is trained).
LaDiC describes Back&Refine but its released code turns it off; here it is an
option of sampling (``refine_fraction``), measured on and off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from unidit.backbones.held_tokens import Conditioning
from unidit.tokenizers.text_latent import TextLatentTokenizer


def token_confidence(tokenizer: TextLatentTokenizer, latents: Tensor) -> Tensor:
    """``(B, L, D)`` latents -> ``(B, L)`` largest token probability the decoder gives each position."""
    return tokenizer.logits(latents).float().softmax(-1).amax(-1)


def least_confident(confidence: Tensor, fraction: float) -> Tensor:
    """``(B, L)`` confidences -> ``(B, L)`` bool, True at the ``ceil(fraction·L)`` least confident positions."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"refine_fraction: expected a fraction in (0, 1), got {fraction}")
    count = max(1, math.ceil(fraction * confidence.shape[1]))
    chosen = confidence.topk(count, dim=1, largest=False).indices  # (B, k)
    return torch.zeros_like(confidence, dtype=torch.bool).scatter_(1, chosen, True)


def renoised_conditioning(latents: Tensor, renoise: Tensor, generator: torch.Generator) -> Conditioning:
    """Hold every position of ``latents`` ``(B, L, D)`` clean except ``renoise`` ``(B, L)``, which restart from noise."""
    noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)  # (B, L, D)
    return Conditioning.held_at(latents, ~renoise, noise)
