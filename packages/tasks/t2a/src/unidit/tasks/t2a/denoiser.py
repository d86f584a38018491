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

from dataclasses import dataclass, field

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.backbones.build import build_backbone
from unidit.backbones.config import backbone_config
from unidit.backbones.layout import PackedBatch, pack
from unidit.backbones.rectified_flow import Conditioning
from unidit.backbones.slots import DATA, PAD

PAD_TIME = -1.0  # the time PAD slots carry; the denoiser masks tokens with t < 0


@dataclass
class LatentDenoiserConfig:
    """Sizes of the latent-audio denoiser.

    Attributes:
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset's ``BackboneConfig`` fields, e.g. ``{"arch": "mmdit"}``.
        latent_channels: channels C of the audio VAE's latents.
        patch_size: latent frames per token (`unidit fit t2a` uses 4 at 50 frames/s: 80 ms).
    """

    preset: str = "small"
    backbone: dict = field(default_factory=dict)
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


class LatentAudioDenoiser(nn.Module, PyTorchModelHubMixin):
    """Predicts the rectified-flow velocity of packed latent tokens ``(B, L, C·p)``."""

    def __init__(self, config: LatentDenoiserConfig):
        super().__init__()
        if isinstance(config, dict):
            config = LatentDenoiserConfig(**config)
        self.config = config
        self.backbone_config = backbone_config(config.preset, **config.backbone)
        dim = self.backbone_config.dim
        self.patch_embed = nn.Linear(config.token_width, dim)
        self.backbone = build_backbone(self.backbone_config)
        self.head = nn.Linear(dim, config.token_width)
        nn.init.zeros_(self.head.weight)  # a fresh model predicts zero velocity (DiT's zero-initialised final layer)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        x: Tensor,  # (B, L, C·p) noisy latent tokens
        t: Tensor,  # (B,) or (B, L); PAD slots carry PAD_TIME
        context: Tensor | None = None,  # (B, S, Dc)
        context_mask: Tensor | None = None,  # (B, S)
        key_mask: Tensor | None = None,  # (B, L) bool; default: t >= 0
    ) -> Tensor:
        batch, length, _ = x.shape
        token_t = t[:, None].expand(batch, length) if t.dim() == 1 else t  # (B, L)
        if key_mask is None:
            key_mask = token_t >= 0  # (B, L)
        backbone_t = _per_sample_if_uniform(token_t.clamp_min(0.0), key_mask)  # (B,) or (B, L)
        positions = torch.zeros(batch, length, 3, dtype=torch.long, device=x.device)  # (B, L, 3)
        positions[..., 2] = torch.arange(length, device=x.device)  # 1-axis layout: (0, 0, l)
        slot_kind = torch.where(key_mask, DATA, PAD)  # (B, L)
        hidden = self.backbone(
            self.patch_embed(x), backbone_t, positions, slot_kind, key_mask,
            context=context, context_mask=context_mask,
        )  # (B, L, D)
        return self.head(hidden) * key_mask[..., None].to(x.dtype)  # (B, L, C·p), zero at PAD

    def pack(self, latents: list[Tensor]) -> PackedBatch:
        """Lay out latents ``(C, T_i)`` (``T_i`` multiples of the patch size) as one padded batch."""
        for z in latents:
            if z.dim() != 2 or z.shape[0] != self.config.latent_channels or z.shape[1] % self.config.patch_size:
                raise ValueError(
                    f"expected latents (C={self.config.latent_channels}, T) with T a multiple of "
                    f"patch_size={self.config.patch_size}, got {tuple(z.shape)}"
                )
        return pack(list(latents), self.config.patch_size)


def _per_sample_if_uniform(t: Tensor, key_mask: Tensor) -> Tensor:
    """``(B,)`` when every valid token of a sample shares one t (adaLN then runs once per sample), else ``(B, L)``."""
    high = torch.where(key_mask, t, torch.full_like(t, -1.0)).amax(dim=1)  # (B,)
    low = torch.where(key_mask, t, torch.full_like(t, 2.0)).amin(dim=1)  # (B,)
    return high if bool((high == low).all()) else t


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
