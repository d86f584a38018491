"""The diagonal Gaussian posterior of a KL autoencoder (Kingma & Welling 2014; LDM, Rombach et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(logvar))), over latents (B, C, T').

    ``logvar`` is clamped to [-30, 20] as in LDM so ``exp`` never overflows.
    """

    def __init__(self, mean: Tensor, logvar: Tensor):
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have one shape")
        self.mean = mean  # (B, C, T')
        self.logvar = logvar.clamp(-30.0, 20.0)  # (B, C, T')

    @classmethod
    def from_moments(cls, moments: Tensor) -> "DiagonalGaussian":
        """Split (B, 2C, T') encoder output into mean and log-variance halves."""
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, T') each
        return cls(mean, logvar)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.exp(self.logvar)

    def mode(self) -> Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample mean + std * eps (differentiable in mean and logvar)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise  # (B, C, T')

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) per latent frame, summed over channels and averaged over frames: (B,).

        The same normalisation as Stable Audio's VAE loss, so its KL weight (1e-4) carries over.
        """
        kl = 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar)  # (B, C, T')
        return kl.sum(dim=1).mean(dim=1)
