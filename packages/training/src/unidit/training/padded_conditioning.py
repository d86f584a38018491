"""Packed batches of latents of different lengths: PAD slots as a time, held tokens beside them.

A batch of 1-axis latents ``(C, T_i)`` (audio frames, speech frames) is packed
into one right-padded token sequence.  Padding travels with the per-token time
(LTX-Video §3.4 per-token timesteps): PAD slots carry :data:`PAD_TIME` (-1, no
time at all) at every step, which a denoiser turns into its attention key mask,
so a sample comes out the same whatever it is batched with.  Held tokens
(in-painting, continuation, a voice prompt) sit beside them at t = 0 through
:class:`~unidit.backbones.held_tokens.Conditioning`.  Shared by the t2a and tts
tasks (moved here from ``unidit.tasks.t2a.denoiser``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from unidit.backbones.held_tokens import Conditioning
from unidit.backbones.latent_denoiser import SlotInputs
from unidit.backbones.layout import PackedBatch
from unidit.backbones.slots import DATA, PAD

PAD_TIME = -1.0  # the time PAD slots carry; a denoiser masks tokens with t < 0


@dataclass
class PaddedConditioning(Conditioning):
    """Held tokens (in-painting / continuation) plus PAD slots that carry :data:`PAD_TIME`.

    ``mask`` marks held tokens as in :class:`Conditioning`; ``padding`` (B, L)
    marks PAD slots, which get ``t = PAD_TIME`` at every step and are never
    reset (their values are dropped by ``unpack``).
    """

    padding: Tensor | None = None  # (B, L) bool

    def token_t(self, t: Tensor) -> Tensor:
        token_t = super().token_t(t)  # (B, L)
        if self.padding is None:
            return token_t
        return torch.where(self.padding, torch.full_like(token_t, PAD_TIME), token_t)  # (B, L)

    def generated(self) -> Tensor:
        """Generated tokens: neither held nor padding ``(B, L)``."""
        free = super().generated()
        return free if self.padding is None else free & ~self.padding


def conditioning_for(packed: PackedBatch, held: Tensor | None = None, x: Tensor | None = None) -> Conditioning | None:
    """The conditioning a packed batch needs: PAD slots, and ``held`` tokens (B, L) kept at ``x``.

    None when nothing is padded or held (every token then shares the sample's t).
    """
    padding = ~packed.key_mask  # (B, L)
    has_held = held is not None and bool(held.any())
    if not has_held and not bool(padding.any()):
        return None
    held = held if has_held else torch.zeros_like(padding)
    return PaddedConditioning(x=packed.tokens if x is None else x, mask=held & ~padding, strength=1.0,
                              padding=padding)


def padded_slots(x: Tensor, t: Tensor, key_mask: Tensor | None = None) -> SlotInputs:
    """Packed 1-axis tokens ``x`` (B, L, C·p) as backbone slots: positions ``(0, 0, l)``, PAD where ``t < 0``.

    ``t`` is ``(B,)`` or ``(B, L)``; PAD slots (``t < 0``, or ``~key_mask`` when given)
    get slot kind PAD and time 0. ``state`` holds the input dtype.
    """
    batch, length, _ = x.shape
    token_t = t[:, None].expand(batch, length) if t.dim() == 1 else t  # (B, L)
    if key_mask is None:
        key_mask = token_t >= 0  # (B, L)
    positions = torch.zeros(batch, length, 3, dtype=torch.long, device=x.device)  # (B, L, 3)
    positions[..., 2] = torch.arange(length, device=x.device)  # 1-axis layout: (0, 0, l)
    slot_kind = torch.where(key_mask, DATA, PAD)  # (B, L)
    return SlotInputs(x, token_t.clamp_min(0.0), positions, slot_kind, key_mask, (x.dtype,))
