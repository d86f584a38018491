"""The autoregressive baseline of the diffusion captioner: a causal transformer decoder over word pieces.

LaDiC (Wang et al. 2024, §4) measures its diffusion captioner against
autoregressive ones (BLIP's decoder), which emit one token per network call and
so slow down as captions grow. This is that baseline at the diffusion
captioner's size: the same :class:`~unidit.tasks.caption.image_encoder.ImageEncoder`
gives the context, a pre-norm transformer decoder (causal self-attention over the
caption so far, cross-attention to the image tokens; Vaswani et al. 2017) predicts
the next word piece, and captions are decoded greedily.

Tokens are the text-latent tokenizer's word pieces in its closed vocabulary
(``[CLS] caption [SEP]``, indices into ``tokenizer.kept_ids``), so both captioners
read and write exactly the same token strings and are scored on the same text.
Decoding recomputes the whole prefix at every step (no key/value cache): at 24
positions and this width the cost of a call is dominated by per-operator
dispatch, not by the prefix length, and the number of calls — one per token — is
the same with or without a cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.tasks.caption.image_encoder import ImageEncoder


@dataclass
class AutoregressiveCaptionerConfig:
    """Sizes of the autoregressive captioner.

    Attributes:
        vocab_size: word pieces it can emit (the text-latent tokenizer's kept vocabulary).
        length: longest caption in tokens, ``[CLS]`` and ``[SEP]`` included.
        dim: width of the decoder.
        depth: decoder layers.
        num_heads: attention heads.
        mlp_ratio: feed-forward width over ``dim``.
        context_dim: width of the image tokens.
        image_size, image_grid, image_channels: the image encoder, as in the diffusion captioner.
    """

    vocab_size: int
    length: int = 24
    dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    context_dim: int = 96
    image_size: int = 64
    image_grid: int = 8
    image_channels: int = 32

    def __post_init__(self) -> None:
        if self.vocab_size < 3 or self.length < 3:
            raise ValueError(f"vocab_size and length: expected at least 3 ([CLS], a word, [SEP]), got "
                             f"{self.vocab_size}, {self.length}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} must be a multiple of num_heads {self.num_heads}")


class AutoregressiveCaptioner(nn.Module, PyTorchModelHubMixin):
    """``(B, 3, H, W)`` pictures and ``(B, T)`` token indices -> ``(B, T, vocab_size)`` next-token logits."""

    def __init__(self, config: AutoregressiveCaptionerConfig | dict):
        super().__init__()
        config = AutoregressiveCaptionerConfig(**config) if isinstance(config, dict) else config
        self.config = config
        self.image_encoder = ImageEncoder(config.image_size, config.image_grid, config.image_channels,
                                          config.context_dim)
        self.context_proj = nn.Linear(config.context_dim, config.dim)
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.position = nn.Parameter(torch.randn(config.length, config.dim) * 0.02)  # (L, D)
        layer = nn.TransformerDecoderLayer(config.dim, config.num_heads, int(config.mlp_ratio * config.dim),
                                           dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.depth, norm=nn.LayerNorm(config.dim))
        self.head = nn.Linear(config.dim, config.vocab_size)
        causal = torch.triu(torch.full((config.length, config.length), float("-inf")), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)  # (L, L) additive mask

    def image_memory(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(B, S, dim)`` image tokens the decoder cross-attends to."""
        return self.context_proj(self.image_encoder(images))

    def logits(self, tokens: Tensor, memory: Tensor) -> Tensor:
        """``(B, T)`` indices (T <= length) and ``(B, S, dim)`` memory -> ``(B, T, V)`` logits."""
        length = tokens.shape[1]
        if length > self.config.length:
            raise ValueError(f"tokens: at most {self.config.length} positions, got {length}")
        hidden = self.embed(tokens) + self.position[:length]  # (B, T, D)
        hidden = self.decoder(hidden, memory, tgt_mask=self.causal[:length, :length], tgt_is_causal=True)
        return self.head(hidden)  # (B, T, V)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        return self.logits(tokens, self.image_memory(images))

    @torch.no_grad()
    def greedy(self, images: Tensor, start: int, stop: int, max_tokens: int | None = None,
               stop_early: bool = True) -> Tensor:
        """Greedy decoding: ``(B, 3, H, W)`` -> ``(B, T)`` indices beginning with ``start``.

        Each step appends the most likely next token; once every row has emitted ``stop``
        decoding ends (``stop_early``), else it runs to ``max_tokens`` positions (default
        ``length``), which times a caption of that many tokens.
        """
        max_tokens = self.config.length if max_tokens is None else min(max_tokens, self.config.length)
        memory = self.image_memory(images)  # (B, S, D)
        tokens = torch.full((images.shape[0], 1), start, dtype=torch.long, device=images.device)  # (B, 1)
        finished = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)  # (B,)
        while tokens.shape[1] < max_tokens:
            following = self.logits(tokens, memory)[:, -1].argmax(-1)  # (B,)
            tokens = torch.cat([tokens, following[:, None]], dim=1)  # (B, T+1)
            finished |= following == stop
            if stop_early and bool(finished.all()):
                break
        return tokens
