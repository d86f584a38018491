"""Chunked encode / decode of long audio that equals the whole-clip result.

Every layer of the VAE is a convolution, so a latent frame depends on a finite
window of samples (its *receptive field*) and an output sample on a finite window
of latent frames. :func:`receptive_context` measures those windows by walking the
network's convolutions in order (a residual unit's skip path adds nothing: its
body's window already contains offset 0):

* encoder, backwards from one latent frame i: a conv (kernel k, dilation d, stride s,
  padding p) maps the window [lo, hi] of its output to [s*lo - p, s*hi - p + (k-1)*d]
  of its input, so frame i reads samples [hop*i + lo, hop*i + hi];
* decoder, forwards from one latent frame j: a stride-1 conv widens the influence to
  [lo + p - (k-1)*d, hi + p], a transposed conv (kernel K, stride s) maps it to
  [s*lo - p, s*hi - p + K - 1], so frame j touches samples [hop*j + lo, hop*j + hi].

Turned into whole latent frames, that is the context a tile needs on each side.
With strides (2, 4, 5, 8) = hop 320 and kernel 7, the ``base`` preset (dilations 1, 3, 9)
has a latent frame read samples [-2501, +2812] around its first sample (8 frames of
context per side) and reach output samples [-3141, +3452] (10 frames per side); the
``tiny`` / ``small`` presets (dilation 1 only) need 3 and 5 frames. The default
``overlap_latents = 16`` covers all of them; an overlap below the measured context is
refused with a ValueError.

A tile covers ``tile_latents`` output frames plus ``overlap_latents`` frames of context
on each side (fewer at the clip's ends, where the whole clip is zero-padded the same
way). Tile boundaries fall on multiples of the hop, so every strided convolution sees
the same phase as in the whole clip, and cropping the centre gives exactly the
untiled values (up to float summation order, ~1e-6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ReceptiveContext:
    """Latent frames of context a tile needs on each side so its centre is exact."""

    encode_left: int
    encode_right: int
    decode_left: int
    decode_right: int

    @property
    def encode(self) -> int:
        return max(self.encode_left, self.encode_right)

    @property
    def decode(self) -> int:
        return max(self.decode_left, self.decode_right)


def _convolutions(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


def encoder_window(encoder: nn.Module) -> tuple[int, int]:
    """Samples [lo, hi] (relative to hop * i) that latent frame i of ``encoder`` reads."""
    lo = hi = 0
    for conv in reversed(_convolutions(encoder)):
        if isinstance(conv, nn.ConvTranspose1d):
            raise ValueError("encoder_window: the encoder must not hold transposed convolutions")
        (k,), (d,), (s,), (p,) = conv.kernel_size, conv.dilation, conv.stride, conv.padding
        lo, hi = s * lo - p, s * hi - p + (k - 1) * d
    patch = getattr(encoder, "patch_size", 1)  # the convs see patches of `patch` samples
    return patch * lo, patch * hi + patch - 1


def decoder_window(decoder: nn.Module) -> tuple[int, int]:
    """Samples [lo, hi] (relative to hop * j) that latent frame j of ``decoder`` influences."""
    lo = hi = 0
    for conv in _convolutions(decoder):
        (k,), (d,), (s,), (p,) = conv.kernel_size, conv.dilation, conv.stride, conv.padding
        if isinstance(conv, nn.ConvTranspose1d):
            lo, hi = s * lo - p, s * hi - p + d * (k - 1)
        elif s == 1:
            lo, hi = lo + p - (k - 1) * d, hi + p
        else:
            raise ValueError("decoder_window: strided (non-transposed) convolutions in a decoder are not supported")
    patch = getattr(decoder, "patch_size", 1)  # each output position unfolds into `patch` samples
    return patch * lo, patch * hi + patch - 1


def receptive_context(vae) -> ReceptiveContext:
    """Context, in latent frames per side, that tiled encode / decode of ``vae`` needs."""
    hop = vae.hop_length
    enc_lo, enc_hi = encoder_window(vae.encoder)
    dec_lo, dec_hi = decoder_window(vae.decoder)
    return ReceptiveContext(
        encode_left=max(0, math.ceil(-enc_lo / hop)),
        encode_right=max(0, math.ceil((enc_hi - hop + 1) / hop)),
        decode_left=max(0, dec_hi // hop),
        decode_right=max(0, (hop - 1 - dec_lo) // hop),
    )


def _tiles(num_frames: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(context start, core start, core end, context end) in latent frames for each tile."""
    return [
        (max(0, start - overlap), start, min(num_frames, start + tile), min(num_frames, start + tile + overlap))
        for start in range(0, num_frames, tile)
    ]


def _check_tiling(tile_latents: int, overlap_latents: int, needed: int, what: str) -> None:
    if tile_latents <= 0:
        raise ValueError(f"{what}: tile_latents must be positive, got {tile_latents}")
    if overlap_latents < needed:
        raise ValueError(
            f"{what}: overlap_latents={overlap_latents} is smaller than the receptive context of this VAE "
            f"({needed} latent frames per side); tiles would not match the whole-clip result"
        )


@torch.no_grad()
def tiled_encode(vae, wav: Tensor, tile_latents: int = 256, overlap_latents: int = 16) -> Tensor:
    """Raw posterior means (B, C, T / hop) of a waveform (B, 1, T), computed tile by tile."""
    vae._check_waveform(wav)
    _check_tiling(tile_latents, overlap_latents, receptive_context(vae).encode, "tiled_encode")
    hop, num_frames = vae.hop_length, wav.shape[-1] // vae.hop_length
    pieces = []
    for ctx_start, start, end, ctx_end in _tiles(num_frames, tile_latents, overlap_latents):
        mean = vae.encode(wav[..., ctx_start * hop : ctx_end * hop]).mean  # (B, C, ctx_end - ctx_start)
        pieces.append(mean[..., start - ctx_start : end - ctx_start])  # (B, C, end - start)
    return torch.cat(pieces, dim=-1)  # (B, C, T / hop)


@torch.no_grad()
def tiled_decode(vae, z: Tensor, tile_latents: int = 256, overlap_latents: int = 16) -> Tensor:
    """Waveform (B, 1, T' * hop) of raw latents (B, C, T'), decoded tile by tile."""
    if z.dim() != 3 or z.shape[-1] == 0:
        raise ValueError(f"tiled_decode: expected raw latents of shape (B, C, T') with T' > 0, got {tuple(z.shape)}")
    _check_tiling(tile_latents, overlap_latents, receptive_context(vae).decode, "tiled_decode")
    hop = vae.hop_length
    pieces = []
    for ctx_start, start, end, ctx_end in _tiles(z.shape[-1], tile_latents, overlap_latents):
        wav = vae.decode(z[..., ctx_start:ctx_end])  # (B, 1, (ctx_end - ctx_start) * hop)
        pieces.append(wav[..., (start - ctx_start) * hop : (end - ctx_start) * hop])  # (B, 1, (end - start) * hop)
    return torch.cat(pieces, dim=-1)  # (B, 1, T' * hop)
