"""A small convolutional image encoder whose feature map is the captioner's context.

LaDiC (Wang et al. 2024, §3.2) conditions its diffusion captioner on the patch
features of a pretrained image encoder (BLIP's ViT), attended by cross-attention.
On the embedded 64×64 scenes a small encoder trained together with the denoiser
is enough: stride-2 convolutions halve the picture until the chosen grid, and
each grid cell becomes one context token. Relations ("to the left of") need to
know where a cell is, so every token adds a learned embedding of its cell.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


class ImageEncoder(nn.Module):
    """``(B, 3, H, W)`` images in [-1, 1] -> ``(B, grid², out_dim)`` tokens.

    A patch stem (kernel = stride = ``image_size / (2·grid)``, as a ViT's patch
    embedding) cuts the picture to a ``2·grid`` map, a 3×3 convolution mixes
    neighbours, a stride-2 convolution halves the map to ``grid`` with twice the
    width, and a last 3×3 convolution mixes again; each cell is then projected to
    one token. On 64×64 pictures with an 8×8 grid this costs about 7 M
    multiply-adds a picture, a sixth of a plain stride-2 pyramid from full size.

    Args:
        image_size: side H = W of the input pictures.
        grid: side of the output feature map; ``image_size`` must be a multiple of ``2·grid``.
        channels: width of the stem (the last two convolutions have twice as many).
        out_dim: width of each context token (the backbone's ``context_dim``).
    """

    def __init__(self, image_size: int = 64, grid: int = 8, channels: int = 32, out_dim: int = 384) -> None:
        super().__init__()
        if grid < 1 or image_size % (2 * grid):
            raise ValueError(f"image_grid {grid}: image_size {image_size} must be a multiple of 2 x image_grid "
                             f"(e.g. image_grid {max(1, image_size // 16)})")
        self.image_size, self.grid = int(image_size), int(grid)
        patch, wide = image_size // (2 * grid), 2 * channels
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, patch, stride=patch), nn.GroupNorm(8, channels), nn.SiLU(),  # (B, C, 2g, 2g)
            nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(8, channels), nn.SiLU(),
            nn.Conv2d(channels, wide, 4, stride=2, padding=1), nn.GroupNorm(8, wide), nn.SiLU(),  # (B, 2C, g, g)
            nn.Conv2d(wide, wide, 3, padding=1), nn.GroupNorm(8, wide), nn.SiLU(),
        )
        self.proj = nn.Linear(wide, out_dim)
        self.position = nn.Parameter(torch.randn(grid * grid, out_dim) * 0.02)  # (S, Dc) one per cell

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def forward(self, images: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, S, Dc)
        if images.dim() != 4 or images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"images: expected (B, 3, {self.image_size}, {self.image_size}) pictures in [-1, 1], "
                             f"got {tuple(images.shape)}")
        cells = self.features(images)  # (B, 2C, g, g)
        tokens = rearrange(cells, "b c h w -> b (h w) c")  # (B, S, 2C)
        return self.proj(tokens) + self.position  # (B, S, Dc)


def images_to_tensor(pictures) -> Tensor:
    """``(B, H, W, 3)`` uint8 (NumPy or tensor) -> ``(B, 3, H, W)`` float in [-1, 1]."""
    pictures = torch.as_tensor(pictures)
    if pictures.dim() != 4 or pictures.shape[-1] != 3 or pictures.dtype != torch.uint8:
        raise ValueError(f"pictures: expected (B, H, W, 3) uint8 RGB, got {tuple(pictures.shape)} {pictures.dtype}")
    return rearrange(pictures.float() / 127.5 - 1.0, "b h w c -> b c h w")
