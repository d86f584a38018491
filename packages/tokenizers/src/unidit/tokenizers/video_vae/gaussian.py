"""The VAE posterior: a diagonal Gaussian per latent element (Kingma & Welling 2014)."""

from __future__ import annotations

import torch
from torch import Tensor


class DiagonalGaussian:
    """``N(mean, exp(logvar))`` over latents ``(B, C, T, H, W)``.

    Args:
        params: ``(B, 2C, T, H, W)``: means then log-variances along channels.
        logvar_clamp: log-variances are clamped to ``[-logvar_clamp, logvar_clamp]``.
    """

    def __init__(self, params: Tensor, logvar_clamp: float = 20.0):
        self.mean, logvar = params.chunk(2, dim=1)  # (B, C, T, H, W) each
        self.logvar = logvar.clamp(-logvar_clamp, logvar_clamp)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) averaged over latent elements, one value per sample: ``(B,)``."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)  # (B, C, T, H, W)
        return kl.flatten(1).mean(dim=1)
