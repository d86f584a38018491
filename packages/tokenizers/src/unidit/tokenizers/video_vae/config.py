"""Sizes of the causal video VAE and its named presets.

The architecture follows LTX-Video (HaCohen et al. 2024, the video VAE section): pixels are
patchified into channels at the input, a stack of stages of causal 3D residual
blocks runs at low resolution, and each stage ends with a space-to-depth /
time-to-depth downsampling. Total compression is therefore
``spatial = patch_size * prod(stage spatial factors)`` and
``temporal = prod(stage temporal factors)``.

Presets:
    tiny   tests (seconds on CPU): 8x spatial, 4x temporal, 4 latent channels.
    small  the CPU default for 17x64x64 clips: 8x spatial, 4x temporal, 16 channels
           (17 frames -> 5 latent frames of 8x8). Its decoder is not timestep-conditioned:
           in a few CPU minutes, learning to denoise as well slowed reconstruction down
           (``timestep_conditioning=True`` turns it on).
    ltx    LTX-Video's compression: 32x32 spatial, 8x temporal, 128 channels (1:192), with its
           stage layout: widths 128/256/512/512, the first three stages each halving time,
           height and width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


@dataclass
class VideoVAEConfig:
    """Every size of a :class:`~unidit.tokenizers.video_vae.model.VideoVAE`.

    Attributes:
        patch_size: spatial patch side folded into channels at the input (LTX uses 4: 3 -> 48 channels).
        channels: width of each encoder stage (the decoder mirrors them).
        downsample: per stage ``(time, space)`` factors of its closing space/time-to-depth step.
        blocks_per_stage: residual blocks in each stage (before its downsampling).
        mid_blocks: residual blocks at the lowest resolution (encoder and decoder each).
        latent_channels: channels of the latent.
        timestep_conditioning: the decoder's norms take a scale/shift from a timestep, so it
            can finish denoising a slightly noised latent (LTX-Video's denoising decoder).
        train_noise_max: with timestep conditioning, training noises latents at t ~ U(0, this).
        decode_timestep: the timestep LTX suggests at inference (noise the latent to it and decode).
        logvar_clamp: the posterior log-variance is clamped to ``[-this, this]``.
        initial_logvar: the encoder's log-variance output at initialisation.
    """

    patch_size: int = 2
    channels: tuple[int, ...] = (32, 64)
    downsample: tuple[tuple[int, int], ...] = ((2, 2), (2, 2))
    blocks_per_stage: int = 1
    mid_blocks: int = 1
    latent_channels: int = 16
    timestep_conditioning: bool = False
    train_noise_max: float = 0.2
    decode_timestep: float = 0.05
    logvar_clamp: float = 20.0
    initial_logvar: float = -6.0

    def __post_init__(self) -> None:
        # JSON (config.json) turns tuples into lists; keep the dataclass hashable and printable.
        self.channels = tuple(int(c) for c in self.channels)
        self.downsample = tuple((int(t), int(s)) for t, s in self.downsample)
        if len(self.channels) != len(self.downsample):
            raise ValueError(
                f"channels ({len(self.channels)} stages) and downsample ({len(self.downsample)} stages) "
                "must have one entry per stage"
            )
        if self.patch_size < 1 or any(t < 1 or s < 1 for t, s in self.downsample):
            raise ValueError(f"patch_size and downsample factors must be >= 1, got {self.patch_size}, {self.downsample}")
        if self.latent_channels < 1 or any(c < 1 for c in self.channels):
            raise ValueError("latent_channels and channels must be positive")

    @property
    def spatial_compression(self) -> int:
        return self.patch_size * math.prod(s for _, s in self.downsample)

    @property
    def temporal_compression(self) -> int:
        return math.prod(t for t, _ in self.downsample)


PRESETS: dict[str, VideoVAEConfig] = {
    "tiny": VideoVAEConfig(
        patch_size=2, channels=(24, 48), downsample=((2, 2), (2, 2)), blocks_per_stage=1, mid_blocks=1,
        latent_channels=4,
    ),
    "small": VideoVAEConfig(
        patch_size=4, channels=(48, 96), downsample=((2, 2), (2, 1)), blocks_per_stage=1, mid_blocks=1,
        latent_channels=16,
    ),
    "ltx": VideoVAEConfig(
        patch_size=4, channels=(128, 256, 512, 512), downsample=((2, 2), (2, 2), (2, 2), (1, 1)),
        blocks_per_stage=2, mid_blocks=2, latent_channels=128, timestep_conditioning=True,
    ),
}


def video_vae_config(preset: str, **overrides) -> VideoVAEConfig:
    """The named preset with ``overrides`` applied (any :class:`VideoVAEConfig` field)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown video VAE preset {preset!r}; expected one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(VideoVAEConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown video VAE config fields {unknown}; expected some of {sorted(known)}")
    return replace(PRESETS[preset], **overrides)
