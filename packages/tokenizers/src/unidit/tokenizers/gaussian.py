"""The posterior of a KL autoencoder: a diagonal Gaussian per latent element.

Kingma & Welling 2014 (the reparameterised sample, the KL to ``N(0, I)``); the
log-variance clamp keeps ``exp`` finite, as in LDM (Rombach et al. 2022). Shared
by the audio VAE (latents ``(B, C, T')``) and the video VAE (``(B, C, T, H, W)``).
"""

from __future__ import annotations

import torch
from torch import Tensor


class DiagonalGaussian:
    """``q(z | x) = N(mean, diag(exp(logvar)))`` over latents ``(B, C, ...)``.

    Args:
        mean: ``(B, C, ...)``.
        logvar: the same shape; clamped to ``logvar_range``.
        logvar_range: ``(low, high)`` bounds of the log-variance.
    """

    def __init__(self, mean: Tensor, logvar: Tensor, logvar_range: tuple[float, float] = (-30.0, 20.0)):
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have one shape")
        self.mean = mean
        self.logvar = logvar.clamp(*logvar_range)

    @classmethod
    def from_moments(cls, moments: Tensor, logvar_range: tuple[float, float] = (-30.0, 20.0)) -> DiagonalGaussian:
        """Split an encoder's ``(B, 2C, ...)`` output along channels: means, then log-variances."""
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, ...) each
        return cls(mean, logvar, logvar_range)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.exp(self.logvar)

    def mode(self) -> Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised ``mean + std * eps`` (differentiable in mean and logvar): ``(B, C, ...)``."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def kl_elements(self) -> Tensor:
        """``KL(q || N(0, I))`` of each latent element: ``(B, C, ...)``; each VAE's loss picks its reduction."""
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)
