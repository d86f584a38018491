"""Encoder / decoder pairs of the motion VQ-VAE; both map (B, D, T) <-> (B, C, T / 2**down).

* Conv: T2M-GPT's (Zhang et al., CVPR 2023, §3.1, after Jukebox) 1D ResNet: per stride-2 stage a
  strided conv(k=4) followed by ``depth`` residual blocks with dilations growth**k (dilated context
  without pooling); the decoder mirrors it with nearest up-sampling and runs the dilations in reverse.
* Transformer: M2DM's (Chi et al., 2023) encoder / decoder with global self-attention over all frames
  of the clip; stride-2 convs do the down- / up-sampling and sinusoidal positions mark time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from unidit.tokenizers.motion.config import MotionVQConfig


class DilatedResBlock(nn.Module):
    """x + conv1(relu(conv3_dilated(relu(x))))."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def _res_stack(width: int, depth: int, growth: int, reverse: bool) -> nn.Sequential:
    dilations = [growth**k for k in range(depth)]
    return nn.Sequential(*[DilatedResBlock(width, d) for d in (reversed(dilations) if reverse else dilations)])


class ConvEncoder(nn.Module):
    def __init__(self, config: MotionVQConfig):
        super().__init__()
        w = config.width
        layers: list[nn.Module] = [nn.Conv1d(config.feature_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_sampling):
            layers += [nn.Conv1d(w, w, 4, stride=2, padding=1), _res_stack(w, config.depth, config.dilation_growth, False)]
        layers.append(nn.Conv1d(w, config.code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, D, T) -> (B, C, T / 2**down)
        return self.net(x)


class ConvDecoder(nn.Module):
    def __init__(self, config: MotionVQConfig):
        super().__init__()
        w = config.width
        layers: list[nn.Module] = [nn.Conv1d(config.code_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_sampling):
            layers += [
                _res_stack(w, config.depth, config.dilation_growth, True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(w, w, 3, padding=1),
            ]
        layers += [nn.Conv1d(w, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, config.feature_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, C, T') -> (B, D, T' * 2**down)
        return self.net(z)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """(length, dim) sine / cosine position table (Vaswani et al., 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block: global multi-head self-attention (SDPA) then a GELU MLP."""

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b t (three h d) -> three b h t d", three=3, h=self.num_heads)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, d)
        x = x + self.out(rearrange(attended, "b h t d -> b t (h d)"))
        return x + self.mlp(self.norm2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, depth: int, num_heads: int):
        super().__init__()
        self.blocks = nn.ModuleList([SelfAttentionBlock(width, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        h = rearrange(x, "b c t -> b t c")
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device)
        for block in self.blocks:
            h = block(h)
        return rearrange(self.norm(h), "b t c -> b c t")


class TransformerEncoder(nn.Module):
    def __init__(self, config: MotionVQConfig):
        super().__init__()
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv1d(config.feature_dim, w, 3, padding=1),
            *[nn.Sequential(nn.GELU(), nn.Conv1d(w, w, 4, stride=2, padding=1)) for _ in range(config.down_sampling)],
        )
        self.transformer = _Transformer(w, config.depth, config.num_heads)
        self.head = nn.Conv1d(w, config.code_dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, D, T) -> (B, C, T / 2**down)
        return self.head(self.transformer(self.stem(x)))


class TransformerDecoder(nn.Module):
    def __init__(self, config: MotionVQConfig):
        super().__init__()
        w = config.width
        self.stem = nn.Conv1d(config.code_dim, w, 1)
        self.transformer = _Transformer(w, config.depth, config.num_heads)
        self.up = nn.Sequential(
            *[
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w, w, 3, padding=1), nn.GELU())
                for _ in range(config.down_sampling)
            ],
            nn.Conv1d(w, config.feature_dim, 3, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:  # (B, C, T') -> (B, D, T' * 2**down)
        return self.up(self.transformer(self.stem(z)))


def build_networks(config: MotionVQConfig) -> tuple[nn.Module, nn.Module]:
    if config.architecture == "conv":
        return ConvEncoder(config), ConvDecoder(config)
    return TransformerEncoder(config), TransformerDecoder(config)
