"""The motion-code denoiser: VQ code ids through the shared backbone to logits over the codebook.

MoMask (Guo et al., CVPR 2024, §3.2) and M2DM (Chi et al. 2023, §3.3) predict
masked motion codes with a bidirectional transformer over code embeddings,
text entering through attention. Here the code ids ``(B, L)`` (``K`` =
``[mask]``) are embedded, laid out as a 1-axis grid of tokens (Lumina-T2X's
layout without placeholders: position ``(0, 0, l)``, PAD slots masked out of
attention), run through the shared backbone (Flag-DiT by default; the masking
level ``t`` goes in through adaLN like a diffusion time, the caption through
the shared text encoder's hidden states as context) and a linear head writes
logits over the ``K`` codes. The embedding and the head are the per-task parts
(:class:`~unidit.backbones.latent_denoiser.LatentDenoiser`), the backbone is
what a joint run shares.

The denoiser also carries the length predictor (MoMask §3.4 trains a separate
length estimator from text; here it is a small head on the pooled caption
embedding, trained with the same steps): a classifier over code lengths
``1 .. max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser, SlotInputs
from unidit.backbones.slots import DATA, PAD
from unidit.training.masked_task import add_code_statistics


@dataclass
class MotionDenoiserConfig(DenoiserConfig):
    """Sizes of the motion-code denoiser (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        codebook_size: codes K of the motion VQ-VAE (ids 0..K-1; K is [mask]).
        embed_dim: width of a code embedding (0 = the backbone's width).
        max_tokens: longest motion in codes (49 = HumanML3D's 196 frames at 4 frames a code);
            the length predictor's classes.
        length_hidden: hidden width of the length predictor.
    """

    codebook_size: int = 512
    embed_dim: int = 0
    max_tokens: int = 49
    length_hidden: int = 256

    def __post_init__(self) -> None:
        for name in ("codebook_size", "max_tokens", "length_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.embed_dim < 0:
            raise ValueError(f"embed_dim: expected 0 (the backbone's width) or a positive width, got {self.embed_dim}")


class LengthPredictor(nn.Module):
    """Pooled caption embedding ``(B, Dc)`` -> logits over code lengths ``1 .. max_tokens`` ``(B, max_tokens)``."""

    def __init__(self, context_dim: int, max_tokens: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, max_tokens))

    def forward(self, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        weight = torch.ones(context.shape[:2], device=context.device) if context_mask is None else context_mask.float()
        pooled = (context * weight[..., None]).sum(1) / weight.sum(1, keepdim=True).clamp(min=1)  # (B, Dc)
        return self.net(pooled)  # (B, max_tokens); class i = i + 1 codes


class MotionDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Logits ``(B, L, K)`` over motion codes for partly masked code ids ``(B, L)``."""

    def __init__(self, config: MotionDenoiserConfig):
        config = MotionDenoiserConfig.coerce(config)
        backbone = config.backbone_config()
        width = config.embed_dim or backbone.dim
        super().__init__(backbone, width, (1,), out_channels=config.codebook_size)
        self.config = config
        self.code_embed = nn.Embedding(config.codebook_size + 1, width)  # id K = [mask]
        nn.init.normal_(self.code_embed.weight, std=0.02)
        self.length_predictor = LengthPredictor(backbone.context_dim, config.max_tokens, config.length_hidden)
        add_code_statistics(self, config.codebook_size)  # the priority schedule's table travels with the weights

    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    def forward(
        self,
        tokens: Tensor,  # (B, L) long code ids, K = [mask]
        t: Tensor,  # (B,) masking level
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
        valid: Tensor | None = None,  # (B, L) bool; default all
    ) -> Tensor:
        slots = self.slots(tokens, t, valid)
        out = self.forward_slots(slots.tokens, slots.t, slots.positions, slots.slot_kind, slots.key_mask,
                                 context, context_mask)  # (B, L, K)
        return self.finish(out, slots)

    def slots(self, tokens: Tensor, t: Tensor, valid: Tensor | None = None) -> SlotInputs:
        """Embedded code ids ``(B, L, E)`` at 1-axis positions; PAD slots where ``valid`` is False."""
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"tokens: expected code ids (B, L) of dtype long, got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > self.mask_id):
            raise ValueError(f"tokens: expected ids in [0, {self.mask_id}] ({self.mask_id} = [mask]), "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        batch, length = tokens.shape
        key_mask = torch.ones_like(tokens, dtype=torch.bool) if valid is None else valid.bool()  # (B, L)
        positions = torch.zeros(batch, length, 3, dtype=torch.long, device=tokens.device)  # (B, L, 3)
        positions[..., 2] = torch.arange(length, device=tokens.device)  # 1-axis layout: (0, 0, l)
        slot_kind = torch.where(key_mask, DATA, PAD)  # (B, L)
        embedded = self.code_embed(tokens)  # (B, L, E)
        return SlotInputs(embedded, t.float(), positions, slot_kind, key_mask, ())

    def finish(self, out: Tensor, slots: SlotInputs) -> Tensor:
        """The head's logits ``(B, L, K)`` (PAD slots carry no loss; the objective ignores them)."""
        return out

    def length_logits(self, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        """``(B, max_tokens)`` logits of the motion length in codes (class i = i + 1 codes)."""
        return self.length_predictor(context, context_mask)
