"""Causal 3D convolution: the past is padded, the future never seen.

LTX-Video (HaCohen et al. 2024, the video VAE section) makes every temporal convolution of
its VAE causal by padding only the start of the time axis, with copies of the
first frame, so that output frame ``t`` depends on input frames ``<= t``. A
video of one frame is then encoded exactly like an image, and a clip's first
frame is encoded on its own. Space is zero-padded symmetrically ("same").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CausalConv3d(nn.Module):
    """``Conv3d`` with "same" spatial padding and first-frame replicate padding in the past only.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``k`` or ``(kt, kh, kw)``; spatial sides must be odd.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int] = 3):
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sides must be odd for 'same' padding, got {(kt, kh, kw)}")
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2))

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, T, H, W)
        if self.time_pad:
            first = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)  # (B, C, kt-1, H, W)
            x = torch.cat([first, x], dim=2)  # (B, C, T + kt - 1, H, W)
        return self.conv(x)  # (B, C_out, T, H, W)


def pad_past(x: Tensor, frames: int) -> Tensor:
    """Prepend ``frames`` copies of the first frame: ``(B, C, T, H, W) -> (B, C, T + frames, H, W)``."""
    if frames == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)

