"""Latent-audio velocity network: 1D VAE latents through the shared backbone (EzAudio).

EzAudio (Hai et al. 2024, §3.2) diffuses the latents of a waveform VAE with a
DiT whose tokens are latent frames.  Here a batch of latents ``(C, T_i)`` of
different lengths is laid out with unidit's 1-axis layout (Lumina-T2X: patches
of ``patch_size`` frames, no placeholders, right-padded with PAD slots), a
linear layer embeds each patch, the backbone (Flag-DiT by default, MMDiT when
``backbone={"arch": "mmdit"}``) denoises, and a zero-initialised linear head
writes the velocity of each patch.

Padding travels with the per-token time: the objective and the samplers hand
the network one ``t`` per token (LTX-Video §3.4), and PAD slots carry
:data:`PAD_TIME` (-1, no time at all), set by :class:`PaddedConditioning`.  The
network turns ``t < 0`` into its attention key mask and writes zero velocity
there, so a sample comes out the same whatever it is batched with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor
from unidit.backbones.held_tokens import Conditioning
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser, SlotInputs
from unidit.backbones.layout import PackedBatch
from unidit.backbones.slots import DATA, PAD

PAD_TIME = -1.0  # the time PAD slots carry; the denoiser masks tokens with t < 0


@dataclass
class LatentDenoiserConfig(DenoiserConfig):
    """Sizes of the latent-audio denoiser (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        latent_channels: channels C of the audio VAE's latents.
        patch_size: latent frames per token (`unidit fit t2a` uses 4 at 50 frames/s: 80 ms).
    """

    latent_channels: int = 16
    patch_size: int = 2

    def __post_init__(self) -> None:
        if self.latent_channels < 1 or self.patch_size < 1:
            raise ValueError(
                f"latent_channels and patch_size must be positive, got {self.latent_channels}, {self.patch_size}"
            )

    @property
    def token_width(self) -> int:
        """Values per token: C · patch_size."""
        return self.latent_channels * self.patch_size


class LatentAudioDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of packed latent tokens ``(B, L, C·p)``."""

    def __init__(self, config: LatentDenoiserConfig):
        config = LatentDenoiserConfig.coerce(config)
        super().__init__(config.backbone_config(), config.latent_channels, (config.patch_size,))
        self.config = config

    def forward(
        self,
        x: Tensor,  # (B, L, C·p) noisy latent tokens
        t: Tensor,  # (B,) or (B, L); PAD slots carry PAD_TIME
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
        key_mask: Tensor | None = None,  # (B, L) bool; default: t >= 0
    ) -> Tensor:
        slots = self.slots(x, t, key_mask)
        out = self.forward_slots(slots.tokens, slots.t, slots.positions, slots.slot_kind, slots.key_mask,
                                 context, context_mask)  # (B, L, C·p)
        return self.finish(out, slots)  # (B, L, C·p), zero at PAD

    def slots(self, x: Tensor, t: Tensor, key_mask: Tensor | None = None) -> SlotInputs:
        """Packed tokens ``x`` (B, L, C·p) with their 1-axis positions; PAD where ``t < 0`` (or ``~key_mask``)."""
        batch, length, _ = x.shape
        token_t = t[:, None].expand(batch, length) if t.dim() == 1 else t  # (B, L)
        if key_mask is None:
            key_mask = token_t >= 0  # (B, L)
        positions = torch.zeros(batch, length, 3, dtype=torch.long, device=x.device)  # (B, L, 3)
        positions[..., 2] = torch.arange(length, device=x.device)  # 1-axis layout: (0, 0, l)
        slot_kind = torch.where(key_mask, DATA, PAD)  # (B, L)
        return SlotInputs(x, token_t.clamp_min(0.0), positions, slot_kind, key_mask, (x.dtype,))

    def finish(self, out: Tensor, slots: SlotInputs) -> Tensor:
        """Head outputs, zero at PAD slots."""
        return out * slots.key_mask[..., None].to(slots.state[0])  # (B, L, C·p)

    def pack(self, latents: list[Tensor]) -> PackedBatch:
        """Lay out latents ``(C, T_i)`` (``T_i`` multiples of the patch size) as one padded batch."""
        for z in latents:
            if z.dim() != 2 or z.shape[0] != self.config.latent_channels or z.shape[1] % self.config.patch_size:
                raise ValueError(
                    f"expected latents (C={self.config.latent_channels}, T) with T a multiple of "
                    f"patch_size={self.config.patch_size}, got {tuple(z.shape)}"
                )
        return super().pack(list(latents))


@dataclass
class PaddedConditioning(Conditioning):
    """Held tokens (in-painting / continuation) plus PAD slots that carry :data:`PAD_TIME`.

    ``mask`` marks held tokens as in :class:`Conditioning`; ``padding`` (B, L)
    marks PAD slots, which get ``t = PAD_TIME`` at every step and are never
    reset (their values are dropped by ``unpack``).
    """

    padding: Tensor | None = None  # (B, L) bool

    def token_t(self, t: Tensor) -> Tensor:
        token_t = super().token_t(t)  # (B, L)
        if self.padding is None:
            return token_t
        return torch.where(self.padding, torch.full_like(token_t, PAD_TIME), token_t)  # (B, L)

    def generated(self) -> Tensor:
        """Generated tokens: neither held nor padding ``(B, L)``."""
        free = super().generated()
        return free if self.padding is None else free & ~self.padding


def conditioning_for(packed: PackedBatch, held: Tensor | None = None, x: Tensor | None = None) -> Conditioning | None:
    """The conditioning a packed batch needs: PAD slots, and ``held`` tokens (B, L) kept at ``x``.

    None when nothing is padded or held (every token then shares the sample's t).
    """
    padding = ~packed.key_mask  # (B, L)
    has_held = held is not None and bool(held.any())
    if not has_held and not bool(padding.any()):
        return None
    held = held if has_held else torch.zeros_like(padding)
    return PaddedConditioning(x=packed.tokens if x is None else x, mask=held & ~padding, strength=1.0,
                              padding=padding)
