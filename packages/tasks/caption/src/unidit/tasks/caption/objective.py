"""The captioner's training losses beyond plain velocity matching: x0-prediction and token cross-entropy.

LaDiC (Wang et al. 2024, §3.2) trains its denoiser to predict the clean text
latents ``x0`` with a squared error, plus a cross-entropy of the tokens the
tokenizer's decoder reads from that estimate (weight 0.2), so the latents are
pulled towards ones that decode to the right words. Here either prediction
(velocity or x0) can carry the cross-entropy: it is taken on the network's
clean estimate. The time and noise are drawn exactly as the shared objective
draws them (:func:`~unidit.training.joint.objective.draw_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch.nn.functional as F
from torch import Tensor
from unidit.tasks.caption.denoiser import CaptionDenoiser
from unidit.tokenizers.text_latent import TextLatentTokenizer
from unidit.training.flow_task import FlowInputs
from unidit.training.joint.objective import FlowTargets, draw_targets, masked_error


@dataclass
class CaptionLosses:
    """The total loss and its parts (each a scalar)."""

    total: Tensor
    latent: Tensor  # squared error of the velocity or of x0, as predicted
    token_ce: Tensor | None  # token cross-entropy of the clean estimate (None with ce_weight 0)


def caption_losses(denoiser: CaptionDenoiser, flow, inputs: FlowInputs, context: Tensor, context_mask: Tensor,
                   tokenizer: TextLatentTokenizer, token_ids: Tensor, ce_weight: float) -> CaptionLosses:
    """Loss of one batch: ``inputs.x0`` ``(B, L, D)`` latents of the captions whose ``(B, L)`` ``token_ids`` are given."""
    targets: FlowTargets = draw_targets(flow, inputs.x0, inputs.mask, inputs.cond)
    out = denoiser(targets.x_t, targets.t, context, context_mask)  # (B, L, D) velocity or x0
    if denoiser.config.prediction == "x0":
        targets = replace(targets, target=inputs.x0)  # held tokens are x0 already and carry no loss
    latent = masked_error(out, targets)
    if ce_weight <= 0:
        return CaptionLosses(latent, latent, None)
    estimate = denoiser.clean_estimate(targets.x_t, targets.t, out)  # (B, L, D)
    logits = tokenizer.logits(estimate)  # (B, L, V') through the frozen decoder
    token_ce = F.cross_entropy(logits.flatten(0, 1).float(), tokenizer.targets(token_ids).flatten(), ignore_index=-100)
    return CaptionLosses(latent + ce_weight * token_ce, latent, token_ce)
