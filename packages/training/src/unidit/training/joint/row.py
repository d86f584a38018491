"""Samples of different tasks laid end to end in one varlen row.

Each task lays its own batch out (:class:`~unidit.backbones.latent_denoiser.SlotInputs`,
padded ``(B_k, L_k)``) and embeds it with its own patch embedding; this module
drops the PAD slots and puts every sample of every task end to end in a single
row ``(1, ΣL, D)`` with ``segment_lengths`` (varlen packing: FlashAttention's
``cu_seqlens``, NaViT's "Patch n' Pack", Dehghani et al. 2023, §2.2), so the
shared backbone runs once over audio, video and voxel tokens together while
attention stays inside each sample (Lumina-T2X's one sequence for every
modality, Gao et al. 2024, §2). :meth:`MixedRow.split` gives each task its
hidden states back in its own padded layout, zeros at PAD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from unidit.backbones.latent_denoiser import SlotInputs, per_sample_if_uniform


@dataclass
class MixedRow:
    """The backbone's inputs for one varlen row of several tasks' samples."""

    x: Tensor  # (1, T, D) embedded tokens
    t: Tensor  # (N,) one time per sample, or (1, T) per token
    positions: Tensor  # (1, T, 3)
    slot_kind: Tensor  # (1, T)
    key_mask: Tensor  # (1, T) bool, all True
    context: Tensor | None  # (N, S, Dc)
    context_mask: Tensor | None  # (N, S)
    modality: Tensor  # (N,) long
    segment_lengths: list[int]
    masks: list[Tensor]  # per task (B_k, L_k) bool: where its real slots sit

    def split(self, hidden: Tensor) -> list[Tensor]:
        """Backbone output ``(1, T, D)`` -> each task's ``(B_k, L_k, D)``, zeros at its PAD slots."""
        parts, start = [], 0
        for mask in self.masks:
            count = int(mask.sum())
            rows, cols = mask.nonzero(as_tuple=True)
            padded = hidden.new_zeros(*mask.shape, hidden.shape[-1])  # (B_k, L_k, D)
            parts.append(padded.index_put((rows, cols), hidden[0, start:start + count]))
            start += count
        return parts


def mix_row(slots: Sequence[SlotInputs], embedded: Sequence[Tensor], modalities: Sequence[int],
            contexts: Sequence[tuple[Tensor, Tensor] | None]) -> MixedRow:
    """Pack the tasks' embedded tokens (each ``(B_k, L_k, D)``) into one varlen row.

    ``contexts`` holds each task's text ``(B_k, S_k, Dc)`` and mask, padded here to one
    length (masked positions are dropped by the backbone). Times stay one per sample
    when every task's are; otherwise every token gets its own.
    """
    masks = [s.key_mask.bool() for s in slots]
    lengths = [int(n) for m in masks for n in m.sum(dim=1).tolist()]
    x = torch.cat([e[m] for e, m in zip(embedded, masks)])[None]  # (1, T, D)
    positions = torch.cat([s.positions[m] for s, m in zip(slots, masks)])[None]  # (1, T, 3)
    slot_kind = torch.cat([s.slot_kind[m] for s, m in zip(slots, masks)])[None]  # (1, T)
    times = [per_sample_if_uniform(s.t, m) for s, m in zip(slots, masks)]
    if all(t.dim() == 1 for t in times):
        t = torch.cat(times)  # (N,)
    else:
        t = torch.cat([(t[:, None].expand(m.shape) if t.dim() == 1 else t)[m] for t, m in zip(times, masks)])[None]
    modality = torch.cat([torch.full((m.shape[0],), int(k), dtype=torch.long, device=x.device)
                          for m, k in zip(masks, modalities)])  # (N,)
    context = context_mask = None
    if any(c is not None for c in contexts):
        if any(c is None for c in contexts):
            raise ValueError("mix_row: either every task has text context or none does")
        width = max(c.shape[1] for c, _ in contexts)
        context = torch.cat([torch.nn.functional.pad(c, (0, 0, 0, width - c.shape[1])) for c, _ in contexts])
        context_mask = torch.cat([torch.nn.functional.pad(cm.bool(), (0, width - cm.shape[1]), value=False)
                                  for _, cm in contexts])  # (N, S)
    return MixedRow(x, t, positions, slot_kind, torch.ones_like(slot_kind, dtype=torch.bool), context,
                    context_mask, modality, lengths, masks)
