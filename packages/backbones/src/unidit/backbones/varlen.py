"""Varlen packing: samples of different lengths end to end in one row, no padding computed.

FlashAttention's variable-length interface (Dao 2023, ``cu_seqlens``) and
NaViT's "Patch n' Pack" (Dehghani et al. 2023, arXiv:2307.06304, §2.2) put
samples of different lengths into one sequence so that no compute goes to
padding. Here the token-wise work of a block (linears, norms, RoPE, MLPs)
runs once over the whole packed row ``(1, T, D)``, and attention runs per
sample: samples of equal length are gathered into one dense batch and
attended with one SDPA call, so a mix of ``k`` distinct lengths costs ``k``
SDPA calls per layer and no padded slot anywhere. Per-sample conditioning
(timestep, pooled text) is regressed per sample and gathered onto the tokens
after the adaLN linear, so it costs no per-token matmul.

A :class:`VarlenRow` is built once per forward and handed to the blocks in
place of an attention mask. The text context stays a per-sample batch
``(N, S, D)``; each sample's tokens see only their own caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor
from unidit.backbones.attention_mask import AttentionMask, key_padding_mask, masked_attention


@dataclass(frozen=True)
class _LengthGroup:
    """The samples of one length: their indices and their tokens' positions in the row."""

    length: int
    samples: Tensor  # (n,) long, sample indices in row order
    token_index: Tensor  # (n·length,) long, positions in the row, sample-major
    context_keys: AttentionMask | None  # key mask over those samples' context, None = no padding
    joint_keys: AttentionMask | None  # key mask over [latent, context] of those samples


class VarlenRow:
    """Which token of a packed row belongs to which sample, and attention that respects it.

    Args:
        lengths: tokens of each sample, in row order (they sum to the row length).
        device: where the index tensors live.
        context_mask: ``(N, S)`` bool, True at real context tokens, or None (no
            context, or no padding in it).
    """

    def __init__(self, lengths: Sequence[int], device: torch.device, context_mask: Tensor | None = None) -> None:
        self.lengths = [int(n) for n in lengths]
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"varlen segment lengths must be positive, got {self.lengths}")
        if context_mask is not None and context_mask.shape[0] != len(self.lengths):
            raise ValueError(
                f"context_mask has {context_mask.shape[0]} rows for {len(self.lengths)} packed samples"
            )
        self.num_tokens = sum(self.lengths)
        counts = torch.tensor(self.lengths, device=device)  # (N,)
        self.sample_of_token = torch.repeat_interleave(torch.arange(len(self.lengths), device=device), counts)  # (T,)
        starts = [0, *accumulate(self.lengths[:-1])]  # first token of each sample
        self.groups: list[_LengthGroup] = []
        for length in sorted(set(self.lengths)):
            members = [i for i, n in enumerate(self.lengths) if n == length]
            first = torch.tensor([starts[i] for i in members], device=device)  # (n,)
            token_index = (first[:, None] + torch.arange(length, device=device)).flatten()  # (n·length,)
            samples = torch.tensor(members, device=device)  # (n,)
            context_keys = joint_keys = None
            if context_mask is not None:
                keys = context_mask.index_select(0, samples).bool()  # (n, S)
                context_keys = key_padding_mask(keys)
                latent = torch.ones(len(members), length, dtype=torch.bool, device=device)  # (n, length)
                joint_keys = key_padding_mask(torch.cat([latent, keys], dim=1))  # (n, length + S)
            self.groups.append(_LengthGroup(length, samples, token_index, context_keys, joint_keys))
        grouped_order = torch.cat([g.token_index for g in self.groups])  # (T,)
        self._token_inverse = torch.argsort(grouped_order)  # (T,) row position -> position in grouped order
        self._sample_inverse = torch.argsort(torch.cat([g.samples for g in self.groups]))  # (N,)

    @property
    def num_samples(self) -> int:
        return len(self.lengths)

    def check_row(self, x: Tensor) -> None:
        """``x`` must be one row ``(1, T, ·)`` holding exactly the packed samples."""
        if x.dim() != 3 or x.shape[0] != 1 or x.shape[1] != self.num_tokens:
            raise ValueError(
                f"a varlen row must be (1, {self.num_tokens}, D) for segment lengths {self.lengths}, "
                f"got {tuple(x.shape)}"
            )

    # -- conditioning ---------------------------------------------------------------
    def expand_index(self, c: Tensor) -> Tensor | None:
        """Index that spreads per-sample conditioning ``(N, 1, ·)`` onto the tokens; None if it is per token."""
        if c.shape[1] != 1 or self.num_samples == 1:
            return None
        if c.shape[0] != self.num_samples:
            raise ValueError(f"conditioning for {c.shape[0]} samples in a row of {self.num_samples}")
        return self.sample_of_token

    # -- attention --------------------------------------------------------------------
    def _split(self, x: Tensor) -> list[Tensor]:
        """``(1, H, T, Dh)`` -> one ``(n, H, length, Dh)`` batch per length group."""
        return [
            rearrange(x[0].index_select(1, g.token_index), "h (n l) d -> n h l d", l=g.length) for g in self.groups
        ]

    def _merge(self, parts: list[Tensor]) -> Tensor:
        """Inverse of :meth:`_split`: ``(n, H, length, Dh)`` per group -> ``(1, H, T, Dh)``."""
        grouped = torch.cat([rearrange(p, "n h l d -> h (n l) d") for p in parts], dim=1)  # (H, T, Dh)
        return grouped.index_select(1, self._token_inverse)[None]  # (1, H, T, Dh)

    def _merge_samples(self, parts: list[Tensor]) -> Tensor:
        """Per-group ``(n, ...)`` -> ``(N, ...)`` in sample order."""
        return torch.cat(parts).index_select(0, self._sample_inverse)

    def self_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``(1, H, T, Dh)`` each -> ``(1, H, T, Dh)``; a token sees its own sample only."""
        outs = [masked_attention(qg, kg, vg, None) for qg, kg, vg in zip(*map(self._split, (q, k, v)), strict=True)]
        return self._merge(outs)

    def cross_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Queries ``(1, H, T, Dh)`` to per-sample keys/values ``(N, H, S, Dh)`` -> ``(1, H, T, Dh)``."""
        outs = [
            masked_attention(qg, k.index_select(0, g.samples), v.index_select(0, g.samples), g.context_keys)
            for g, qg in zip(self.groups, self._split(q), strict=True)
        ]
        return self._merge(outs)

    def joint_attention(
        self, q: Tensor, k: Tensor, v: Tensor, qc: Tensor | None, kc: Tensor, vc: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """MM-DiT joint attention per sample over ``[latent, its context]``.

        ``q, k, v`` ``(1, H, T, Dh)``; ``kc, vc`` ``(N, H, S, Dh)``; ``qc`` the
        same or None when the context stream asks nothing (the last block).
        Returns the latent output ``(1, H, T, Dh)`` and the context output
        ``(N, H, S, Dh)`` or None.
        """
        latent_outs, context_outs = [], []
        for g, qg, kg, vg in zip(self.groups, *map(self._split, (q, k, v)), strict=True):
            keys = torch.cat([kg, kc.index_select(0, g.samples)], dim=2)  # (n, H, length + S, Dh)
            values = torch.cat([vg, vc.index_select(0, g.samples)], dim=2)  # (n, H, length + S, Dh)
            queries = qg if qc is None else torch.cat([qg, qc.index_select(0, g.samples)], dim=2)
            out = masked_attention(queries, keys, values, g.joint_keys)  # (n, H, length [+ S], Dh)
            latent_outs.append(out[:, :, : g.length])
            context_outs.append(out[:, :, g.length :])
        latent = self._merge(latent_outs)  # (1, H, T, Dh)
        return latent, (None if qc is None else self._merge_samples(context_outs))


def varlen_row(
    segment_lengths: Sequence[int] | None,
    x: Tensor,
    key_mask: Tensor,
    context_mask: Tensor | None,
    window_blocks: bool,
) -> VarlenRow | None:
    """The backbones' check of a varlen forward: None for an ordinary padded batch.

    ``x`` ``(1, T, D)`` must hold exactly the samples (no PAD slot: a varlen row
    has nothing to pad); ``context_mask`` ``(N, S)`` is the per-sample text mask.
    """
    if segment_lengths is None:
        return None
    if window_blocks:
        raise ValueError(
            "window attention (config.window_blocks) is not supported on a varlen row; "
            "pack same-size samples with pack() instead"
        )
    row = VarlenRow(segment_lengths, x.device, context_mask)
    row.check_row(x)
    if not bool(key_mask.all()):
        raise ValueError("a varlen row has no PAD slots, but key_mask marks some; build it with pack_varlen()")
    return row
