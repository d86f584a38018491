"""Reconstruction metrics for videos in [-1, 1]: PSNR and SSIM, one value per video.

SSIM follows Wang et al. 2004 (IEEE TIP): an 11-tap Gaussian window
(sigma 1.5), constants ``(0.01 L)^2`` and ``(0.03 L)^2`` with ``L`` the data
range, computed per frame and channel ("valid" windows) and averaged. Both
functions take ``(B, 3, F, H, W)`` videos in [-1, 1] (``data_range = 2``);
pass ``data_range=1.0`` for videos in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(f"expected two videos (B, C, F, H, W) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per video ``(B,)``; ``inf`` where the videos are equal."""
    _check_pair(x, y)
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(dim=1)  # (B,)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(size: int, sigma: float, device=None) -> Tensor:
    """Normalised 1D Gaussian ``(size,)``."""
    coords = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim_frames(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM of image batches ``(N, C, H, W)``, averaged over channels and positions: ``(N,)``.

    The window shrinks (to an odd size) for images smaller than it.
    """
    size = min(window, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd
    g = gaussian_window(size, sigma, x.device).to(x.dtype)
    channels = x.shape[1]
    kernel_h = g.reshape(1, 1, size, 1).expand(channels, 1, size, 1)
    kernel_w = g.reshape(1, 1, 1, size).expand(channels, 1, 1, size)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, "valid": (N, C, H-size+1, W-size+1)
        return F.conv2d(F.conv2d(t, kernel_h, groups=channels), kernel_w, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.pow(2)
    var_y = blur(y * y) - mu_y.pow(2)
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Mean per-frame SSIM of each video ``(B,)``; videos ``(B, C, F, H, W)`` in [-1, 1] by default."""
    _check_pair(x, y)
    frames = x.shape[2]
    per_frame = ssim_frames(
        rearrange(x.float(), "b c f h w -> (b f) c h w"), rearrange(y.float(), "b c f h w -> (b f) c h w"), data_range
    )  # (B*F,)
    return rearrange(per_frame, "(b f) -> b f", f=frames).mean(dim=1)
