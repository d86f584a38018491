"""The TTS velocity network: speech latents through the shared backbone, conditioned on learned text.

F5-TTS (Chen et al. 2024, §3.2) and E2-TTS (Eskimez et al. 2024) generate
speech with a flow-matching transformer over acoustic frames conditioned on
characters; SimpleSpeech 2 (Yang et al. 2024, §3) does the same over the
latents of a speech codec with a DiT.  Here the frames are the audio VAE's
latents (:mod:`unidit.tokenizers.audio_vae`, 50 per second), laid out on one
axis in patches of ``patch_size`` frames (Lumina-T2X), and the network is:

- the context ids of :mod:`unidit.tasks.tts.frontend` (speaker token + text
  tokens) → :class:`~unidit.tasks.tts.text_encoder.TextEncoder` → the
  backbone's context (Flag-DiT cross-attention; the joint stream with
  ``backbone={"arch": "mmdit"}``), pooled into the timestep embedding too;
- optionally F5-TTS's filler-padded text added to the input tokens
  (:class:`~unidit.tasks.tts.text_encoder.FillerText`);
- a linear patch embedding, the shared backbone and a zero-initialised head;
- the two sentence-duration predictors of :mod:`unidit.tasks.tts.duration` on
  the same text encoding.

A reference prompt is not an input of its own: its latents are held clean in
the sequence with per-token ``t = 0`` (the kit's held tokens), exactly as t2a
continues a clip.  PAD slots carry a negative time and get zero velocity
(:mod:`unidit.training.padded_conditioning`).  Everything here, text encoder
and duration heads included, is one module, so the EMA copy and the export
hold all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor
from unidit.backbones.config import BackboneConfig, backbone_config
from unidit.backbones.latent_denoiser import DenoiserConfig, LatentDenoiser, per_sample_if_uniform
from unidit.backbones.layout import PackedBatch
from unidit.tasks.tts.duration import DurationPredictors, LogDurations
from unidit.tasks.tts.text_encoder import FillerText, TextEncoder
from unidit.training.padded_conditioning import padded_slots


@dataclass
class TTSDenoiserConfig(DenoiserConfig):
    """Sizes of the TTS denoiser (``preset`` and ``backbone`` as in :class:`DenoiserConfig`).

    Attributes:
        latent_channels: channels C of the audio VAE's latents.
        patch_size: latent frames per token (2 at 50 frames/s: 40 ms).
        num_ids: rows of the context embedding (:attr:`TextFrontend.num_ids`: text, speaker and null tokens).
        text_dim: width of the text encoder (the backbone's ``context_dim``).
        text_layers: transformer layers of the text encoder.
        text_heads: attention heads of the text encoder.
        filler_text: add F5-TTS's filler-padded text to the input tokens.
        duration_hidden: hidden width of each duration head.
    """

    latent_channels: int = 16
    patch_size: int = 2
    num_ids: int = 64
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    filler_text: bool = False
    duration_hidden: int = 128

    def __post_init__(self) -> None:
        for name in ("latent_channels", "patch_size", "num_ids", "text_dim", "text_heads", "duration_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.text_layers < 0 or self.text_dim % self.text_heads:
            raise ValueError(f"text_layers must be >= 0 and text_dim ({self.text_dim}) a multiple of "
                             f"text_heads ({self.text_heads})")

    def backbone_config(self) -> BackboneConfig:
        """The preset with its overrides; the context width is always the text encoder's."""
        return backbone_config(self.preset, **{**self.backbone, "context_dim": self.text_dim})


class TTSDenoiser(LatentDenoiser, PyTorchModelHubMixin):
    """Velocity of packed speech-latent tokens ``(B, L, C·p)`` given context ids ``(B, S, 1)``."""

    def __init__(self, config: TTSDenoiserConfig):
        config = TTSDenoiserConfig.coerce(config)
        super().__init__(config.backbone_config(), config.latent_channels, (config.patch_size,))
        self.config = config
        self.text_encoder = TextEncoder(config.num_ids, config.text_dim, config.text_layers, config.text_heads)
        self.filler = (FillerText(config.num_ids, config.text_dim, self.backbone_config.dim)
                       if config.filler_text else None)
        self.duration = DurationPredictors(config.text_dim, config.duration_hidden)

    @property
    def null_id(self) -> int:
        return self.config.num_ids - 1  # the frontend's null token is its last id

    def forward(
        self,
        x: Tensor,  # (B, L, C·p) noisy latent tokens
        t: Tensor,  # (B,) or (B, L); PAD slots carry PAD_TIME
        context: Tensor | None = None,  # (B, S, 1) long context ids; None = the null caption
        context_mask: Tensor | None = None,  # (B, S) bool
    ) -> Tensor:
        ids, mask = self._ids(context, context_mask, x.shape[0], x.device)  # (B, S), (B, S)
        text = self.text_encoder(ids, mask)  # (B, S, Dt)
        slots = padded_slots(x, t)
        tokens = self.patch_embed(slots.tokens)  # (B, L, D)
        if self.filler is not None:
            tokens = tokens + self.filler(ids[:, 1:], self._text_mask(ids, mask)[:, 1:], x.shape[1])  # (B, L, D)
        hidden = self.backbone(
            tokens, per_sample_if_uniform(slots.t, slots.key_mask), slots.positions, slots.slot_kind, slots.key_mask,
            context=text, context_mask=mask, **self.modality_arguments(x.shape[0], x.device),
        )  # (B, L, D)
        return self.head(hidden) * slots.key_mask[..., None].to(hidden.dtype)  # (B, L, C·p), zero at PAD

    def durations(self, context: Tensor, context_mask: Tensor) -> LogDurations:
        """Log seconds ``(B,)`` of each utterance by both predictors, from context ids ``(B, S, 1)``."""
        ids, mask = self._ids(context, context_mask, context.shape[0], context.device)
        return self.duration(self.text_encoder(ids, mask), mask, self._text_mask(ids, mask))

    def pack(self, latents: list[Tensor]) -> PackedBatch:
        """Lay out latents ``(C, T_i)`` (``T_i`` multiples of the patch size) as one padded batch."""
        p, channels = self.config.patch_size, self.config.latent_channels
        for z in latents:
            if z.dim() != 2 or z.shape[0] != channels or z.shape[1] % p or z.shape[1] == 0:
                raise ValueError(f"expected latents (C={channels}, T) with T a positive multiple of "
                                 f"patch_size={p}, got {tuple(z.shape)}")
        return super().pack(list(latents))

    def _ids(self, context: Tensor | None, mask: Tensor | None, batch: int,
             device: torch.device) -> tuple[Tensor, Tensor]:
        if context is None:
            ids = torch.full((batch, 1), self.null_id, dtype=torch.long, device=device)  # (B, 1)
            return ids, torch.ones_like(ids, dtype=torch.bool)
        ids = context[..., 0].long()  # (B, S)
        return ids, torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()

    def _text_mask(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, S) bool: the text tokens (not the leading speaker token, not padding, not a null row)."""
        text = mask.clone()
        text[:, 0] = False
        return text & (ids[:, :1] != self.null_id)  # (B, S)
