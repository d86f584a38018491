"""Hyper-parameters of the 1D waveform VAE and its named presets.

The architecture is the Oobleck autoencoder of Stable Audio Open (Evans et al.
2024, "Stable Audio Open", §3.1; code in stable-audio-tools) as EzAudio uses it
(Hai et al. 2024, §3.1: a waveform VAE instead of mel + vocoder): per level, three
residual units with dilations (1, 3, 9) then a strided convolution; Snake
activations; a KL bottleneck. The hop (samples per latent frame) is the product
of the strides (times an optional input patch size).

Presets (all 16 kHz, strides (2, 4, 5, 8) = hop 320, i.e. 50 latent frames/s):

* ``tiny``  - 4 base channels, for tests (seconds on a CPU).
* ``small`` - the CPU default of ``unidit fit audio-vae``: 4 samples folded into channels at
  the input (LTX-Video's patchify), then strides (2, 5, 8) at widths 32 -> 256
  (1.6 M parameters; both with the CPU settings described at ``CPU_PRESET``).
* ``base``  - Oobleck widths: 64 base channels with multipliers (2, 4, 8, 16) and 64
  latent channels (Stable Audio Open's VAE has 128 base channels, multipliers
  (1, 2, 4, 8, 16), strides (2, 4, 4, 8, 8) = hop 2048 at 44.1 kHz and 64 latent
  channels; here the hop is 320 at 16 kHz to keep 50 latents/s as EzAudio does).

``config.json`` turns tuples into lists; ``__post_init__`` turns them back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass
class AudioVAEConfig:
    """Hyper-parameters of :class:`~unidit.tokenizers.audio_vae.model.AudioVAE`."""

    sample_rate: int = 16000
    """Sample rate in Hz of the waveforms the VAE reads and writes."""
    base_channels: int = 16
    """Channels of the first convolution (at the full sample rate)."""
    channel_mults: tuple[int, ...] = (2, 4, 8, 16)
    """Width of the output of each down-sampling level, as a multiple of base_channels (one per stride)."""
    strides: tuple[int, ...] = (2, 4, 5, 8)
    """Down-sampling factor of each level (encoder order)."""
    patch_size: int = 1
    """Samples folded into channels before the first conv and unfolded after the last
    (LTX-Video's patchify at the input); hop_length = patch_size * prod(strides)."""
    latent_channels: int = 16
    """Channels C of the latent (the posterior has C means and C log-variances)."""
    dilations: tuple[int, ...] = (1, 3, 9)
    """Dilations of the residual units in every level."""
    kernel_size: int = 7
    """Kernel of the dilated convolutions in the residual units (odd)."""
    weight_norm: bool = True
    """Weight normalisation on every convolution (as Oobleck / DAC)."""
    snake_alpha: float = 1.0
    """Initial alpha of every Snake activation (learned per channel afterwards)."""
    initial_logvar: float = -8.0
    """Initial posterior log-variance (bias of the encoder's log-variance outputs). A fresh encoder
    with log-variance 0 buries its means (RMS ~0.1) under unit-variance sampling noise, and with a
    KL weight of 1e-4 it takes thousands of steps to shrink it; starting at std ~0.02 lets a short
    CPU run learn from the first steps, and the KL term still widens the posterior later."""

    def __post_init__(self) -> None:
        for name in ("channel_mults", "strides", "dilations"):
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        for name in ("sample_rate", "base_channels", "latent_channels", "patch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if not self.strides or any(s < 2 for s in self.strides):
            raise ValueError(f"strides: expected at least one stride, each >= 2, got {self.strides}")
        if len(self.channel_mults) != len(self.strides):
            raise ValueError(
                f"channel_mults: expected one multiplier per stride ({len(self.strides)}), got {self.channel_mults}"
            )
        if any(m < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults: must be >= 1, got {self.channel_mults}")
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations: expected dilations >= 1, got {self.dilations}")
        if self.snake_alpha <= 0:
            raise ValueError(f"snake_alpha: must be positive, got {self.snake_alpha}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd and positive, got {self.kernel_size}")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame: the patch size times the product of the strides."""
        return self.patch_size * math.prod(self.strides)

    @property
    def channels(self) -> tuple[int, ...]:
        """Width at the input of each level and after the last one: (base, base*m1, ..., base*mn)."""
        return (self.base_channels, *(self.base_channels * m for m in self.channel_mults))

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length


# The CPU presets keep one residual unit per level instead of Oobleck's three and drop weight
# norm (about half the step time), and start Snake at alpha = 3, which makes it clearly
# nonlinear at audio amplitudes (sin^2(alpha x) / alpha ~ alpha x^2 for small x). Measured on the
# embedded sounds (small, 8 x 0.5 s crops): a fresh waveform VAE first settles on reproducing
# only the noise floor; with these settings and loudest-of-4 training crops (see data.py) events
# come back after ~500 steps, while the Oobleck layout with alpha 1 and uniform crops still
# output only the noise floor after 600-1000 steps.
# The small preset folds 4 samples into channels before the first convolution: at the same step
# time (0.11 s for 8 x 0.5 s crops, 2 cores) that buys 4x the width of an unpatched 8-channel
# stem (1.6 M vs 0.43 M parameters). With the multi-resolution mel loss and gradient clipping,
# 1500 steps took the event classifier's accuracy on reconstructions of the t2a test clips from
# 0.23 (unpatched 8 channels, no mel loss) to 0.88; patching 16 samples (128 channels, strides
# (4, 5)) reached only 0.54: tones at high pitch came back smeared.
CPU_PRESET = dict(dilations=(1,), weight_norm=False, snake_alpha=3.0)
AUDIO_VAE_PRESETS: dict[str, dict] = {
    "tiny": dict(base_channels=4, channel_mults=(2, 4, 8, 8), latent_channels=16, **CPU_PRESET),
    "small": dict(patch_size=4, base_channels=32, strides=(2, 5, 8), channel_mults=(2, 4, 8), latent_channels=16,
                  **CPU_PRESET),
    "base": dict(base_channels=64, channel_mults=(2, 4, 8, 16), latent_channels=64),
}


def audio_vae_config(preset: str, **overrides) -> AudioVAEConfig:
    """A named preset (``tiny``, ``small``, ``base``) with any field overridden."""
    if preset not in AUDIO_VAE_PRESETS:
        raise ValueError(f"preset: unknown audio VAE preset {preset!r}; choose one of {sorted(AUDIO_VAE_PRESETS)}")
    known = {f.name for f in dataclasses.fields(AudioVAEConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown audio VAE option(s) {unknown}; expected some of {sorted(known)}")
    return AudioVAEConfig(**{**AUDIO_VAE_PRESETS[preset], **overrides})
