"""Tokens held clean: one mechanism for every kind of conditioning (LTX-Video, HaCohen et al. 2024, §3.4).

Image-to-video, video extension, audio / motion in-painting and continuation,
and voxel completion all give some tokens a per-token time
``t_token = min(t, 1 - strength)``; at strength 1 those tokens sit at t = 0 and
come out of the sampler equal to their clean value bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Conditioning:
    """Tokens held (nearly) clean during training and sampling (LTX-Video §3.4 per-token timesteps).

    One mechanism for image-to-video, video extension, audio / motion
    in-painting and continuation, and voxel completion.
    """

    x: Tensor  # (B, L, C) clean values of the conditioning tokens (other positions ignored)
    mask: Tensor  # (B, L) bool, True at conditioning tokens
    strength: float = 1.0  # held tokens use t = min(t, 1 - strength)

    @classmethod
    def held_at(cls, known: Tensor, mask: Tensor, noise: Tensor) -> Conditioning:
        """Hold ``known`` (B, L, C) clean where ``mask`` (B, L) is True; noise elsewhere.

        ``cond.x`` is then the sampler's starting point: the held tokens already
        at their clean values, the others at ``noise``.
        """
        return cls(x=torch.where(mask[..., None], known.to(noise.dtype), noise), mask=mask, strength=1.0)

    def token_t(self, t: Tensor) -> Tensor:
        """Per-token time ``(B, L)`` from a per-sample ``(B,)``, per-token ``(B, L)`` or scalar ``t``."""
        t = torch.as_tensor(t, device=self.mask.device)
        if t.dim() == 1:
            t = t[:, None]  # (B, 1)
        t = t.expand(self.mask.shape)  # (B, L)
        return torch.where(self.mask, t.clamp(max=1.0 - self.strength), t)  # (B, L)

    def generated(self) -> Tensor:
        """``(B, L)`` bool: the tokens being generated (not held)."""
        return ~self.mask

    def hold(self, x: Tensor, noise: Tensor, t_token: Tensor) -> Tensor:
        """Reset the conditioning tokens of ``x`` to their noised value at their own time.

        Where ``t_token`` is 0 the token becomes ``self.x`` bit for bit.
        """
        tt = t_token[..., None].to(x.dtype)  # (B, L, 1)
        blended = (1.0 - tt) * self.x.to(x.dtype) + tt * noise  # (B, L, C)
        held = torch.where(tt > 0, blended, self.x.to(x.dtype))  # (B, L, C)
        return torch.where(self.mask[..., None], held, x)  # (B, L, C)
