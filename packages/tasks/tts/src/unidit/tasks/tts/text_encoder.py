"""The learned text side of the TTS denoiser: a small transformer over token ids, and F5-TTS's filler text.

E2-TTS and F5-TTS learn their character embedding from scratch with the flow
model (Eskimez et al. 2024, §3; Chen et al. 2024, §3.2) instead of using a
pretrained language model; SimpleSpeech 2 (Yang et al. 2024, §3.3) notes that a
learned or pretrained text encoder in front of a DiT both work without any
phoneme alignment.  :class:`TextEncoder` is that learned encoder: an embedding
of the context ids (:mod:`unidit.tasks.tts.frontend`), fixed sinusoidal
positions and a few pre-norm transformer layers; its output is the backbone's
context (Flag-DiT's cross-attention, MMDiT's joint text stream).

:class:`FillerText` is F5-TTS's other text path (§3.2, Fig. 1): the character
ids padded with a filler token to the length of the audio sequence, embedded,
refined by a convolution (F5-TTS uses ConvNeXt V2 blocks) and added to the
input tokens, so every audio position sees "its" part of the text from the
first layer on.  Its output layer starts at zero, so turning it on does not
change a fresh model.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sine / cosine positions ``(length, dim)`` (Vaswani et al. 2017, §3.5)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (S, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    angles = position * frequency[None]  # (S, dim / 2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (S, dim / 2, 2)
    return rearrange(table, "s half two -> s (half two)")[:, :dim]  # (S, dim)


class TextEncoder(nn.Module):
    """Context ids ``(B, S)`` → hidden states ``(B, S, dim)``.

    Args:
        num_ids: rows of the embedding (text, speaker and null tokens).
        dim: width (the backbone's ``context_dim``).
        layers: transformer layers (0 = the embedding alone).
        heads: attention heads per layer.
    """

    def __init__(self, num_ids: int, dim: int, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(num_ids, dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """``ids`` (B, S) long, ``mask`` (B, S) bool (True = real) → ``(B, S, dim)``, zero at padding."""
        hidden = self.embed(ids) + sinusoidal_positions(ids.shape[1], self.dim, ids.device)[None]  # (B, S, D)
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=~mask)  # (B, S, D)
        return self.norm(hidden) * mask[..., None].to(hidden.dtype)  # (B, S, D)


class FillerText(nn.Module):
    """F5-TTS's filler-padded text ``(B, L, out_dim)`` for ``L`` audio tokens (see the module docstring).

    Args:
        num_ids: rows of the context embedding (the filler token is one more).
        dim: width of the text features.
        out_dim: width of the audio token embedding they are added to.
        kernel: width of the depthwise convolution along the padded text.
    """

    def __init__(self, num_ids: int, dim: int, out_dim: int, kernel: int = 7) -> None:
        super().__init__()
        self.filler = num_ids
        self.embed = nn.Embedding(num_ids + 1, dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.mix = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU())
        self.out = nn.Linear(dim, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def padded_ids(self, text_ids: Tensor, text_mask: Tensor, length: int) -> Tensor:
        """Text ids ``(B, S)`` cut or filler-padded to ``(B, length)`` (padding positions become filler)."""
        batch, count = text_ids.shape
        padded = torch.full((batch, length), self.filler, dtype=torch.long, device=text_ids.device)  # (B, L)
        keep = min(count, length)
        padded[:, :keep] = torch.where(text_mask[:, :keep], text_ids[:, :keep], self.filler)
        return padded

    def forward(self, text_ids: Tensor, text_mask: Tensor, length: int) -> Tensor:
        """``text_ids`` (B, S) long, ``text_mask`` (B, S) → features ``(B, length, out_dim)``."""
        hidden = self.embed(self.padded_ids(text_ids, text_mask, length))  # (B, L, D)
        conv = rearrange(self.conv(rearrange(hidden, "b l d -> b d l")), "b d l -> b l d")  # (B, L, D)
        return self.out(self.mix(hidden + conv))  # (B, L, out_dim)
