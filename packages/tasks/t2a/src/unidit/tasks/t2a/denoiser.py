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

from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser, SlotInputs
from unidit.backbones.layout import PackedBatch
from unidit.training.padded_conditioning import PAD_TIME, PaddedConditioning, conditioning_for, padded_slots

__all__ = ["PAD_TIME", "LatentAudioDenoiser", "LatentDenoiserConfig", "PaddedConditioning", "conditioning_for"]


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
        return padded_slots(x, t, key_mask)

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
