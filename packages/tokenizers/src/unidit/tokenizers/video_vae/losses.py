"""Training losses of the video VAE.

LTX-Video (HaCohen et al. 2024) trains its VAE with pixel, perceptual and
adversarial losses. A perceptual network would need downloaded weights, so
here a structural term takes its place: ``1 - SSIM`` averaged over an
average-pooling pyramid of each frame, a light multi-scale SSIM (Wang et al.
2003) that rewards the edges and texture that L1 alone blurs. A small KL term
keeps the latent close to a unit Gaussian.
The optional adversarial term uses hinge losses (Lim & Ye 2017) on a 3D patch
discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from unidit.tokenizers.gaussian import DiagonalGaussian
from unidit.tokenizers.video_vae.metrics import ssim_frames

LOSS_SSIM_WINDOW = 7  # small enough to leave room at the pyramid's coarse levels


def pyramid_ssim_loss(recon: Tensor, target: Tensor, levels: int = 3, data_range: float = 2.0) -> Tensor:
    """``1 - SSIM`` averaged over up to ``levels`` 2x average-pooled scales of every frame (scalar)."""
    x = rearrange(recon, "b c f h w -> (b f) c h w")
    y = rearrange(target, "b c f h w -> (b f) c h w")
    scores = []
    for level in range(levels):
        if level and min(x.shape[-2:]) < 2 * LOSS_SSIM_WINDOW:
            break
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)  # (N, C, H/2, W/2)
        scores.append(ssim_frames(x, y, data_range, window=LOSS_SSIM_WINDOW).mean())
    return 1.0 - torch.stack(scores).mean()


@dataclass
class VAELossWeights:
    """Weights of the VAE's loss terms."""

    l1: float = 1.0
    ssim: float = 0.5
    kl: float = 1e-4
    adversarial: float = 0.1


def vae_loss(
    recon: Tensor,
    target: Tensor,
    posterior: DiagonalGaussian,
    weights: VAELossWeights,
    fake_logits: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted total and its parts (``l1``, ``ssim``, ``kl`` and, with logits, ``adversarial``)."""
    parts = {
        "l1": (recon - target).abs().mean(),
        "ssim": pyramid_ssim_loss(recon, target),
        "kl": posterior.kl_elements().flatten(1).mean(dim=1).mean(),  # averaged over latent elements
    }
    if fake_logits is not None:
        parts["adversarial"] = hinge_generator_loss(fake_logits)
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    return total, parts


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(fake)]``."""
    return -fake_logits.mean()
