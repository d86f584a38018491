"""A velocity network for any tokenizer latent: layout, patch embedding, shared backbone, head.

Every task diffuses a latent ``(C, *grid)`` of 1 to 3 axes — audio-VAE frames,
video-VAE frames x rows x columns, a voxel grid. The network around the
backbone is the same each time (DiT, Peebles & Xie 2023, §3; Lumina-T2X, Gao et
al. 2024, §2): lay the latent out as one token sequence (patches, ``[nextline]``
/ ``[nextframe]`` placeholders, :mod:`unidit.backbones.layout`), embed each patch
vector linearly, run the backbone with a time per sample or per token, write
each token's patch with a linear head, and lay the grid back out.
:class:`LatentDenoiser` is that network; a task adds only what is its own (how
its latent is read and written, how per-cell times become per-slot times).

The embedding and the head are per task; the backbone is the part a joint run
shares between tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from unidit.backbones.build import build_backbone
from unidit.backbones.config import BackboneConfig, backbone_config
from unidit.backbones.layout import PackedBatch, pack, unpack_stacked
from unidit.backbones.slots import DATA


@dataclass
class DenoiserConfig:
    """What every task's velocity network is sized by; a task's config adds its own fields.

    Attributes:
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset's ``BackboneConfig`` fields, e.g. ``{"arch": "mmdit", "depth": 8}``.
    """

    preset: str = "small"
    backbone: dict = field(default_factory=dict)

    def backbone_config(self) -> BackboneConfig:
        return backbone_config(self.preset, **self.backbone)

    @classmethod
    def coerce(cls, config):
        """``config`` itself, or one built from its dict (as a ``config.json`` hands it back)."""
        return cls(**config) if isinstance(config, dict) else config


@dataclass
class SlotInputs:
    """A task's input laid out for the backbone, plus what its :meth:`LatentDenoiser.finish` needs.

    A joint run (``unidit fit joint``) takes these from every task, packs their
    embedded tokens end to end in one varlen row, runs the shared backbone once,
    and hands each task its part of the head output back through ``finish``.
    """

    tokens: Tensor  # (B, L, C·prod(p)) patch vectors
    t: Tensor  # (B,) or (B, L) slot times
    positions: Tensor  # (B, L, 3)
    slot_kind: Tensor  # (B, L)
    key_mask: Tensor  # (B, L) bool
    state: tuple = ()  # what ``finish`` reads back (packed batch, coordinates, dtype, ...)


class LatentDenoiser(nn.Module):
    """Patch embedding -> backbone -> head over laid-out latents.

    Args:
        backbone: the backbone's configuration (Flag-DiT or MMDiT, see
            :func:`unidit.backbones.config.backbone_config`).
        channels: latent channels ``C`` read in.
        patch_size: patch side per grid axis, e.g. ``(4,)`` for audio frames, ``(1, 2, 2)``
            for video, ``(4, 4, 4)`` for voxels.
        out_channels: channels written out per cell (default ``channels``).
        zero_head: start the head at zero, so a fresh model predicts zero
            velocity (DiT's zero-initialised final layer).
    """

    def __init__(
        self,
        backbone: BackboneConfig,
        channels: int,
        patch_size: Sequence[int],
        out_channels: int | None = None,
        zero_head: bool = True,
    ) -> None:
        super().__init__()
        self.patch_size = tuple(int(p) for p in patch_size)
        if not 1 <= len(self.patch_size) <= 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size: expected 1 to 3 positive sides (one per grid axis), got {patch_size}")
        self.channels = int(channels)
        self.out_channels = int(out_channels or channels)
        self.patch_volume = math.prod(self.patch_size)  # latent cells per token
        self.backbone_config = backbone
        self.patch_embed = nn.Linear(self.channels * self.patch_volume, backbone.dim)
        self.backbone = build_backbone(backbone)
        self.head = nn.Linear(backbone.dim, self.out_channels * self.patch_volume)
        if zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    modality: int | None = None
    """Modality id handed to the backbone's modality embedding (set by a joint run; None = none)."""

    def pack(self, latents: Tensor | Sequence[Tensor]) -> PackedBatch:
        """Lay out ``(B, C, *grid)`` latents, or a list of ``(C, *grid_i)`` of different sizes (padded)."""
        return pack(latents, self.patch_size)

    def forward_slots(
        self,
        tokens: Tensor,  # (B, L, C·prod(p)) patch vectors (zeros at placeholder / PAD slots)
        t: Tensor,  # (B,) or (B, L)
        positions: Tensor,  # (B, L, 3)
        slot_kind: Tensor,  # (B, L)
        key_mask: Tensor,  # (B, L) bool
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
    ) -> Tensor:
        """Head outputs ``(B, L, out_channels·prod(p))`` for laid-out tokens."""
        hidden = self.backbone(
            self.patch_embed(tokens),
            per_sample_if_uniform(t, key_mask),
            positions,
            slot_kind,
            key_mask,
            context=context,
            context_mask=context_mask,
            **self.modality_arguments(tokens.shape[0], tokens.device),
        )  # (B, L, D)
        return self.head(hidden)  # (B, L, out·prod(p))

    def modality_arguments(self, batch: int, device: torch.device) -> dict:
        """``{"modality": (B,) ids}`` when this denoiser belongs to a joint run, else ``{}``."""
        if self.modality is None:
            return {}
        return {"modality": torch.full((batch,), int(self.modality), dtype=torch.long, device=device)}

    def slots(self, x: Tensor, t: Tensor) -> SlotInputs:
        """The laid-out input of ``forward(x, t)`` before the patch embedding (a task overrides it)."""
        packed = self.pack(x)
        return SlotInputs(packed.tokens, t, packed.positions, packed.slot_kind, packed.key_mask, (packed,))

    def finish(self, out: Tensor, slots: SlotInputs) -> Tensor:
        """What ``forward`` returns, from the head outputs ``(B, L, out·prod(p))`` of ``slots``."""
        return unpack_stacked(out, slots.state[0], channels=self.out_channels)

    def forward_packed(
        self,
        packed: PackedBatch,
        t: Tensor,  # (B,) or (B, L)
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        tokens: Tensor | None = None,  # (B, L, C·prod(p)); default packed.tokens
    ) -> Tensor:
        """Head outputs ``(B, L, out·prod(p))`` for a packed batch (its tokens, or ``tokens`` in its layout)."""
        return self.forward_slots(
            packed.tokens if tokens is None else tokens, t, packed.positions, packed.slot_kind, packed.key_mask,
            context, context_mask,
        )

    def forward(
        self,
        latent: Tensor,  # (B, C, *grid)
        t: Tensor,  # (B,) or (B, L) per slot
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """``(B, out_channels, *grid)``: the head's output laid back onto the latent grid."""
        slots = self.slots(latent, t)
        out = self.forward_slots(slots.tokens, slots.t, slots.positions, slots.slot_kind, slots.key_mask,
                                 context, context_mask)  # (B, L, out·prod(p))
        return self.finish(out, slots)


def per_sample_if_uniform(t: Tensor, key_mask: Tensor | None = None) -> Tensor:
    """``(B,)`` when every (unmasked) token of each sample shares one t, else ``t`` unchanged.

    With one time per sample the backbone's adaLN runs once per sample instead
    of once per token. Masked (PAD) tokens do not count.
    """
    if t.dim() == 1:
        return t
    if key_mask is None:
        return t[:, 0] if bool((t == t[:, :1]).all()) else t
    high = torch.where(key_mask, t, torch.full_like(t, -math.inf)).amax(dim=1)  # (B,)
    low = torch.where(key_mask, t, torch.full_like(t, math.inf)).amin(dim=1)  # (B,)
    return high if bool((high == low).all()) else t


def slot_times(cell_t: Tensor, packed: PackedBatch) -> Tensor:
    """Per-cell times ``(B, *grid)`` -> per-slot times ``(B, L)`` in ``packed``'s layout.

    A patch takes the mean time of its cells (one value whenever whole latent
    frames are held, as in image-to-video); a placeholder takes the time of the
    data slot before it (LTX-Video's per-token times, HaCohen et al. 2024, §3.4).
    """
    patch_t = pack(cell_t[:, None].to(torch.float32), packed.patch_size).tokens.mean(dim=-1)  # (B, L)
    slots = torch.arange(patch_t.shape[1], device=patch_t.device).expand_as(patch_t)  # (B, L)
    last_data = torch.where(packed.slot_kind == DATA, slots, torch.zeros_like(slots)).cummax(dim=1).values
    return torch.gather(patch_t, 1, last_data)  # (B, L)
