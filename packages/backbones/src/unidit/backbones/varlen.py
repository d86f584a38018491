"""Varlen packing: samples of different lengths end to end in one row, no padding computed.

FlashAttention's variable-length interface (Dao 2023, ``cu_seqlens``) and
NaViT's "Patch n' Pack" (Dehghani et al. 2023, arXiv:2307.06304, §2.2) put
samples of different lengths into one sequence so that no compute goes to
padding. Here the token-wise work of a block (linears, norms, RoPE, MLPs)
runs once over the whole packed row ``(1, T, D)``, and attention runs per
group of samples: the samples of one length class are gathered into one dense
batch, padded to the class's longest rounded up to ``pad_multiple`` tokens,
and attended with one SDPA call whose key mask hides the padding. A length
class spans lengths within a factor of two, so padding at most doubles a
sample's attention cost, and a batch of many distinct lengths costs a few
attention calls per layer instead of one per length. The rounding also keeps
the attention shapes few: on CPU, bf16 matrix kernels (oneDNN) are built per
shape, and a small attention-sized product took about 0.9 ms on the first
call of a shape against 0.12 ms on later calls (``benchmarks/kernel_shapes.py``,
torch 2.11, 2-core Intel Xeon with AMX), so a row whose every step brought new
exact lengths paid that on most calls. ``pad_multiple=1`` and
``length_classes=False`` group samples of exactly equal length with no padding
at all. Per-sample conditioning
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
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from unidit.backbones.attention_mask import AttentionMask, key_padding_mask, masked_attention


@dataclass(frozen=True)
class _LengthGroup:
    """The samples of one length class, padded to one length: indices, gathers and key masks."""

    length: int  # padded length of every sample of the group
    samples: Tensor  # (n,) long, sample indices in row order
    token_index: Tensor  # (R,) long, the row positions of the group's real tokens, sample-major
    gather: Tensor | None  # (n·length,) long row positions, a pad slot repeating its sample's first; None = no pad
    real: Tensor | None  # (R,) long, where the real tokens sit among the n·length slots; None = no pad
    latent: Tensor  # (n, length) bool, True at real tokens
    latent_keys: AttentionMask | None  # key mask over the padded latent slots, None = no padding
    context_keys: AttentionMask | None  # key mask over those samples' context, None = no padding
    joint_keys: AttentionMask | None  # key mask over [latent, context] of those samples


def _length_groups(lengths: Sequence[int], pad_multiple: int, length_classes: bool) -> dict[int, list[int]]:
    """Padded length -> the samples padded to it (row order): a group per length class.

    A class holds the lengths whose rounded-up value ``r`` (to ``pad_multiple``) has the
    same ``ceil(log2 r)``; its samples are padded to the class's longest rounded-up length.
    Without classes every rounded-up length is its own group.
    """
    rounded = [-(-n // pad_multiple) * pad_multiple for n in lengths]
    keys = [(r - 1).bit_length() if length_classes else r for r in rounded]
    members: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    return {max(rounded[i] for i in group): group for group in members.values()}


class VarlenRow:
    """Which token of a packed row belongs to which sample, and attention that respects it.

    Args:
        lengths: tokens of each sample, in row order (they sum to the row length).
        device: where the index tensors live.
        context_mask: ``(N, S)`` bool, True at real context tokens, or None (no
            context, or no padding in it).
        pad_multiple: attention pads each group's samples to a multiple of this many tokens.
        length_classes: group lengths within a factor of two (True) or only equal padded
            lengths (False).
    """

    def __init__(self, lengths: Sequence[int], device: torch.device, context_mask: Tensor | None = None,
                 pad_multiple: int = 16, length_classes: bool = True) -> None:
        self.lengths = [int(n) for n in lengths]
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"varlen segment lengths must be positive, got {self.lengths}")
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be at least 1, got {pad_multiple}")
        if context_mask is not None and context_mask.shape[0] != len(self.lengths):
            raise ValueError(
                f"context_mask has {context_mask.shape[0]} rows for {len(self.lengths)} packed samples"
            )
        self.num_tokens = sum(self.lengths)
        counts = torch.tensor(self.lengths, device=device)  # (N,)
        self.sample_of_token = torch.repeat_interleave(torch.arange(len(self.lengths), device=device), counts)  # (T,)
        starts = [0, *accumulate(self.lengths[:-1])]  # first token of each sample
        self.groups: list[_LengthGroup] = []
        for length, members in sorted(_length_groups(self.lengths, pad_multiple, length_classes).items()):
            first = torch.tensor([starts[i] for i in members], device=device)  # (n,)
            own = torch.tensor([self.lengths[i] for i in members], device=device)  # (n,)
            slot = torch.arange(length, device=device)  # (length,)
            latent = slot[None, :] < own[:, None]  # (n, length) True at real tokens
            latent_keys = key_padding_mask(latent)  # None: no sample of the group is padded
            padded = latent_keys is not None
            positions = first[:, None] + torch.where(latent, slot, 0)  # (n, length), a pad slot -> the sample's first
            token_index = positions[latent]  # (R,) sample-major
            gather = positions.flatten() if padded else None  # (n·length,)
            real = latent.flatten().nonzero().squeeze(1) if padded else None  # (R,)
            samples = torch.tensor(members, device=device)  # (n,)
            context_keys = joint_keys = None
            if context_mask is not None:
                keys = context_mask.index_select(0, samples).bool()  # (n, S)
                context_keys = key_padding_mask(keys)
                joint_keys = key_padding_mask(torch.cat([latent, keys], dim=1))  # (n, length + S)
            self.groups.append(_LengthGroup(length, samples, token_index, gather, real, latent, latent_keys,
                                            context_keys, joint_keys))
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
        """``(1, H, T, Dh)`` -> one ``(n, H, length, Dh)`` batch per group (pad slots repeat a real token)."""
        return [
            rearrange(x[0].index_select(1, g.token_index if g.gather is None else g.gather),
                      "h (n l) d -> n h l d", l=g.length)
            for g in self.groups
        ]

    def _merge(self, parts: list[Tensor]) -> Tensor:
        """Inverse of :meth:`_split` on the real tokens: ``(n, H, length, Dh)`` per group -> ``(1, H, T, Dh)``."""
        flat = [rearrange(p, "n h l d -> h (n l) d") for p in parts]  # (H, n·length, Dh) each
        real = [f if g.real is None else f.index_select(1, g.real) for g, f in zip(self.groups, flat, strict=True)]
        grouped = torch.cat(real, dim=1)  # (H, T, Dh)
        return grouped.index_select(1, self._token_inverse)[None]  # (1, H, T, Dh)

    def _merge_samples(self, parts: list[Tensor]) -> Tensor:
        """Per-group ``(n, ...)`` -> ``(N, ...)`` in sample order."""
        return torch.cat(parts).index_select(0, self._sample_inverse)

    def self_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``(1, H, T, Dh)`` each -> ``(1, H, T, Dh)``; a token sees its own sample only."""
        outs = [masked_attention(qg, kg, vg, g.latent_keys)
                for g, qg, kg, vg in zip(self.groups, *map(self._split, (q, k, v)), strict=True)]
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
            mask = g.joint_keys
            if mask is None and g.latent_keys is not None:  # padded latent, no context mask given
                context = g.latent.new_ones(g.latent.shape[0], kc.shape[2])  # (n, S)
                mask = key_padding_mask(torch.cat([g.latent, context], dim=1))  # (n, length + S)
            out = masked_attention(queries, keys, values, mask)  # (n, H, length [+ S], Dh)
            latent_outs.append(out[:, :, : g.length])
            context_outs.append(out[:, :, g.length :])
        latent = self._merge(latent_outs)  # (1, H, T, Dh)
        return latent, (None if qc is None else self._merge_samples(context_outs))


def pad_context_columns(context: Tensor, context_mask: Tensor, multiple: int = 8) -> tuple[Tensor, Tensor]:
    """Pad a varlen row's text ``(N, S, D)`` and mask ``(N, S)`` to a multiple of ``multiple`` columns.

    The padding is masked out of every key set; it keeps the context's shape among a few
    values from step to step (the CPU kernels' per-shape cost, see the module docstring).
    """
    extra = -context.shape[1] % multiple
    if extra == 0:
        return context, context_mask
    return F.pad(context, (0, 0, 0, extra)), F.pad(context_mask, (0, extra), value=False)


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
