"""Building blocks of the causal video VAE (LTX-Video, HaCohen et al. 2024).

* :class:`FrameGroupNorm`: GroupNorm whose statistics are taken over each
  frame alone, so normalisation never mixes frames and the network stays
  causal. (LTX normalises each pixel's channel vector instead, PixelNorm; at
  the small CPU sizes here that trained several times slower than per-frame
  GroupNorm when overfitting a few clips, so this one is used.) With a
  conditioning vector it takes its scale and shift from it (the
  timestep-conditioned decoder).
* :class:`ResBlock3d`: two causal 3x3x3 convolutions with pre-norm and SiLU,
  starting as the identity (second convolution zero-initialised).
* :class:`SpaceTimeToDepth` / :class:`DepthToSpaceTime`: resampling by moving
  space and time into channels (and back), each followed / preceded by a causal
  convolution, with a parameter-free shortcut (channel averaging / repetition,
  the residual autoencoding of DC-AE, Chen et al. 2024). With these shortcuts
  and identity-initialised blocks, an untrained VAE already passes block
  averages of the pixels through, so training starts from a blurry but
  faithful reconstruction instead of from nothing.
  Time-to-depth first replicates the first frame ``ft - 1`` times, so that
  ``1 + ft*k`` frames become ``1 + k`` and frame 0 stays alone; depth-to-time
  drops those frames again. Both do so on a clip's first chunk only when the
  clip streams through in time chunks (:class:`TimeStreaming`).
* :class:`TimestepEmbedding`: sinusoidal features of ``t`` through an MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from unidit.tokenizers.video_vae.causal_conv import CausalConv3d, TimeStreaming, pad_past


class FrameGroupNorm(nn.Module):
    """GroupNorm with statistics per frame; affine from parameters, or scale/shift from a condition ``(B, D)``."""

    def __init__(self, channels: int, cond_dim: int | None = None, groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.groups = math.gcd(groups, channels)
        self.eps = eps
        if cond_dim is None:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
            self.modulation = None
        else:
            self.modulation = nn.Linear(cond_dim, 2 * channels)
            nn.init.zeros_(self.modulation.weight)  # adaLN-zero (DiT): starts as a plain norm
            nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        # x: (B, C, T, H, W); each frame is normalised on its own
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        x = rearrange(F.group_norm(frames, self.groups, eps=self.eps), "(b t) c h w -> b c t h w", b=x.shape[0])
        if self.modulation is None:
            return x * self.weight[:, None, None, None] + self.bias[:, None, None, None]
        if cond is None:
            raise ValueError("this norm is timestep-conditioned: pass cond (B, D)")
        scale, shift = rearrange(self.modulation(cond), "b (two c) -> two b c 1 1 1", two=2)  # (B, C, 1, 1, 1) each
        return x * (1 + scale) + shift


def norm_silu_conv(norm: FrameGroupNorm, conv: CausalConv3d, x: Tensor, cond: Tensor | None = None) -> Tensor:
    """``conv(silu(norm(x)))``, the pre-activation step of every block: ``(B, C, T, H, W) -> (B, C_out, T, H, W)``.

    The causal padding is taken before the convolution is called, so the
    unpadded activation is freed as soon as its padded copy exists instead of
    living through the convolution as its argument (one full-size tensor less
    at the peak; the arithmetic is unchanged).
    """
    return conv.convolve(conv.pad(F.silu(norm(x, cond))))


def channel_shortcut(x: Tensor, out_channels: int) -> Tensor | None:
    """Parameter-free channel change: average groups of channels, or repeat each channel (None if neither fits).

    With channels kept in a fixed major-to-minor order, averaging consecutive groups
    and repeating each channel are inverse-like operations (DC-AE's residual
    autoencoding, Chen et al. 2024).
    """
    channels = x.shape[1]
    if channels == out_channels:
        return x
    if channels % out_channels == 0:
        return rearrange(x, "b (c g) t h w -> b c g t h w", c=out_channels).mean(dim=2)
    if out_channels % channels == 0:
        return repeat(x, "b c t h w -> b (c g) t h w", g=out_channels // channels)
    return None


def has_channel_shortcut(in_channels: int, out_channels: int) -> bool:
    return in_channels % out_channels == 0 or out_channels % in_channels == 0


def zero_init_(conv: CausalConv3d) -> CausalConv3d:
    """Zero a convolution that runs beside a shortcut, so the pair starts as the shortcut alone."""
    nn.init.zeros_(conv.conv.weight)
    nn.init.zeros_(conv.conv.bias)
    return conv


class ShortcutConv(nn.Module):
    """Causal 3x3x3 convolution plus :func:`channel_shortcut` of its input (where the channel counts allow).

    With a shortcut the convolution starts at zero.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.conv = CausalConv3d(in_channels, out_channels, 3)
        if has_channel_shortcut(in_channels, out_channels):
            zero_init_(self.conv)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = channel_shortcut(x, self.out_channels)
        out = self.conv(x)
        return out if shortcut is None else out + shortcut


class ResBlock3d(nn.Module):
    """Pre-norm residual block of two causal 3x3x3 convolutions; the second starts at zero (the block at identity)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int | None = None):
        super().__init__()
        self.norm1 = FrameGroupNorm(in_channels, cond_dim)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = FrameGroupNorm(out_channels, cond_dim)
        self.conv2 = zero_init_(CausalConv3d(out_channels, out_channels, 3))
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        # x: (B, C_in, T, H, W) -> (B, C_out, T, H, W)
        h = norm_silu_conv(self.norm1, self.conv1, x, cond)
        h = norm_silu_conv(self.norm2, self.conv2, h, cond)
        return self.skip(x) + h


class SpaceTimeToDepth(TimeStreaming):
    """Downsample ``(T, H, W) = (1 + ft*k, fs*h, fs*w) -> (1 + k, h, w)``, channels ``C_in -> C_out``.

    As in LTX-Video, a causal convolution first maps ``C_in`` to ``C_out / (ft*fs*fs)``
    channels at full resolution, then time and space fold into channels; the
    shortcut folds the input itself and averages channel groups down to ``C_out``.
    A streamed clip's later chunks must hold whole groups of ``ft`` frames.
    """

    def __init__(self, in_channels: int, out_channels: int, time_factor: int, space_factor: int):
        super().__init__()
        self.ft, self.fs = time_factor, space_factor
        self.out_channels = out_channels
        factor = time_factor * space_factor**2
        if out_channels % factor:
            raise ValueError(f"downsampling by {factor} needs output channels divisible by {factor}, got {out_channels}")
        self.conv = CausalConv3d(in_channels, out_channels // factor, 3)
        if has_channel_shortcut(in_channels * factor, out_channels):
            zero_init_(self.conv)

    def _to_depth(self, x: Tensor) -> Tensor:
        if not self.continuing:  # the clip's start: frame 0 fills its own block
            x = pad_past(x, self.ft - 1)  # (B, C, ft*(1+k), H, W)
        elif x.shape[2] % self.ft:
            raise ValueError(f"a continuing chunk must hold a multiple of {self.ft} frames here, got {x.shape[2]}")
        return rearrange(x, "b c (t ft) (h fh) (w fw) -> b (c ft fh fw) t h w", ft=self.ft, fh=self.fs, fw=self.fs)

    def forward(self, x: Tensor) -> Tensor:
        out = self._to_depth(self.conv(x))  # (B, C_out, 1+k, h, w), or (B, C_out, k, h, w) continuing
        shortcut = channel_shortcut(self._to_depth(x), self.out_channels)
        self.chunk_done()
        return out if shortcut is None else out + shortcut


class DepthToSpaceTime(TimeStreaming):
    """Upsample ``(1 + k, h, w) -> (1 + ft*k, fs*h, fs*w)``, channels ``C_in -> C_out``.

    The shortcut repeats input channels up to ``C_out*ft*fs*fs`` before unfolding,
    undoing :class:`SpaceTimeToDepth`'s averaging shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, time_factor: int, space_factor: int):
        super().__init__()
        self.ft, self.fs = time_factor, space_factor
        self.conv = ShortcutConv(in_channels, out_channels * time_factor * space_factor**2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)  # (B, C_out*ft*fs*fs, 1+k, h, w)
        h = rearrange(h, "b (c ft fh fw) t h w -> b c (t ft) (h fh) (w fw)", ft=self.ft, fh=self.fs, fw=self.fs)
        clip_start = not self.continuing  # a later chunk of a streamed clip has only new frames
        self.chunk_done()
        # (B, C_out, 1 + ft*k, H, W) at the clip's start (latent frame 0 gives frame 0 only), else (B, C_out, ft*k, H, W)
        return h[:, :, self.ft - 1 :] if clip_start else h


class TimestepEmbedding(nn.Module):
    """``t (B,) in [0, 1] -> (B, dim)``: sinusoidal features of ``1000 t`` through a SiLU MLP."""

    def __init__(self, dim: int, frequencies: int = 128):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        angles = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))  # (B, dim)
