"""A 3D patch discriminator for the video VAE's optional adversarial loss.

A PatchGAN (Isola et al. 2017) extended to space-time, as used by video
tokenizers such as LTX-Video (HaCohen et al. 2024): strided 3D convolutions
score overlapping space-time patches as real or reconstructed, one logit per
patch. Trained with hinge losses (:mod:`unidit.tokenizers.video_vae.losses`).
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator3d(nn.Module):
    """``(B, 3, F, H, W) -> (B, 1, F', H', W')`` patch logits.

    Args:
        channels: width of the first layer; doubled at each further layer.
        layers: strided layers (each halves height and width; later ones also time).
    """

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()
        modules: list[nn.Module] = [
            nn.Conv3d(3, channels, (3, 4, 4), stride=(1, 2, 2), padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = channels
        for i in range(1, layers):
            stride = (2, 2, 2) if i > 1 else (1, 2, 2)
            modules += [
                nn.Conv3d(width, width * 2, (3, 4, 4), stride=stride, padding=1),
                nn.GroupNorm(min(32, width * 2) // 4 or 1, width * 2),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        modules.append(nn.Conv3d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*modules)

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)
