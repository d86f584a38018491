"""The 1D waveform VAE: Oobleck encoder / decoder with a KL bottleneck.

Encoder (Stable Audio Open's Oobleck, Evans et al. 2024; EzAudio, Hai et al. 2024):
conv(k=7) to ``base_channels``, one :class:`EncoderBlock` per stride (residual units
with dilations ``config.dilations``, Oobleck's (1, 3, 9), then a strided conv), Snake,
conv(k=3) to ``2 * latent_channels`` moments (mean, log-variance). The decoder mirrors it
with transposed convolutions and ends in a conv(k=7) to one channel. The log-variance
outputs start at ``config.initial_logvar`` (see :class:`AudioVAEConfig`). A waveform
(B, 1, T) becomes latents (B, C, T / hop_length), hop_length = patch_size * prod(strides)
(patch_size 1 in every preset).

Diffusion models read *normalised* latents: ``(z - latent_mean) / latent_std`` with
per-channel statistics measured once over training data (:meth:`AudioVAE.fit_latent_stats`,
the per-channel analogue of LDM's scale factor). They are buffers, so ``save_pretrained``
writes them to ``model.safetensors`` next to ``config.json``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.tokenizers.audio_vae.blocks import DecoderBlock, EncoderBlock, Snake, conv1d
from unidit.tokenizers.audio_vae.config import AudioVAEConfig
from unidit.tokenizers.gaussian import DiagonalGaussian


class OobleckEncoder(nn.Module):
    """Waveform (B, 1, T) -> posterior moments (B, 2C, T / hop)."""

    def __init__(self, config: AudioVAEConfig):
        super().__init__()
        channels, wn = config.channels, config.weight_norm
        blocks = [
            EncoderBlock(
                channels[i], channels[i + 1], stride, config.dilations, config.kernel_size, wn, config.snake_alpha
            )
            for i, stride in enumerate(config.strides)
        ]
        moments = conv1d(channels[-1], 2 * config.latent_channels, 3, padding=1, weight_norm=wn)
        nn.init.constant_(moments.bias[config.latent_channels :], config.initial_logvar)  # log-variance half
        self.patch_size = config.patch_size
        self.net = nn.Sequential(
            conv1d(config.patch_size, channels[0], 7, padding=3, weight_norm=wn),
            *blocks,
            Snake(channels[-1], config.snake_alpha),
            moments,
        )

    def forward(self, wav: Tensor) -> Tensor:  # (B, 1, T) -> (B, 2C, T / hop)
        patches = rearrange(wav, "b 1 (t p) -> b p t", p=self.patch_size)  # (B, P, T / P)
        # The view's strides (T, 1, P) read as channels-last, and the first convolution would keep that
        # layout for the whole first level, where oneDNN's convolutions are ~10% slower; a copy with
        # standard strides (a few hundred KB) costs nothing and gives the same numbers.
        return self.net(patches.clone(memory_format=torch.contiguous_format))


class OobleckDecoder(nn.Module):
    """Latents (B, C, T') -> waveform (B, 1, T' * hop)."""

    def __init__(self, config: AudioVAEConfig):
        super().__init__()
        channels, wn = config.channels, config.weight_norm
        levels = list(reversed(range(len(config.strides))))  # deepest level first
        blocks = [
            DecoderBlock(
                channels[i + 1],
                channels[i],
                config.strides[i],
                config.dilations,
                config.kernel_size,
                wn,
                config.snake_alpha,
            )
            for i in levels
        ]
        self.patch_size = config.patch_size
        self.net = nn.Sequential(
            conv1d(config.latent_channels, channels[-1], 7, padding=3, weight_norm=wn),
            *blocks,
            Snake(channels[0], config.snake_alpha),
            conv1d(channels[0], config.patch_size, 7, padding=3, weight_norm=wn),
        )

    def forward(self, z: Tensor) -> Tensor:  # (B, C, T') -> (B, 1, T' * hop)
        patches = self.net(z)  # (B, P, T' * hop / P)
        return rearrange(patches, "b p t -> b 1 (t p)")


class AudioVAE(nn.Module, PyTorchModelHubMixin, library_name="unidit", tags=["audio", "vae", "oobleck"]):
    """Waveform VAE; ``save_pretrained`` / ``from_pretrained`` keep the config and latent statistics."""

    def __init__(self, config: AudioVAEConfig):
        super().__init__()
        if isinstance(config, dict):
            config = AudioVAEConfig(**config)
        self.config = config
        self.encoder = OobleckEncoder(config)
        self.decoder = OobleckDecoder(config)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))  # (C,)
        self.register_buffer("latent_std", torch.ones(config.latent_channels))  # (C,)

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    # -- raw latents ------------------------------------------------------------------
    def encode(self, wav: Tensor) -> DiagonalGaussian:
        """Posterior over raw latents (B, C, T / hop) of a waveform (B, 1, T), T a multiple of the hop."""
        self._check_waveform(wav)
        return DiagonalGaussian.from_moments(self.encoder(wav))

    def decode(self, z: Tensor) -> Tensor:
        """Raw latents (B, C, T') -> waveform (B, 1, T' * hop)."""
        if z.dim() != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"decode: expected latents of shape (B, {self.latent_channels}, T'), got {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, wav: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruction (B, 1, T) from a posterior sample, and the posterior."""
        posterior = self.encode(wav)
        return self.decode(posterior.sample()), posterior

    # -- normalised latents (what a diffusion model sees) -------------------------------
    def normalize(self, z: Tensor) -> Tensor:  # (B, C, T') raw -> normalised
        return (z - self.latent_mean[:, None]) / self.latent_std[:, None]

    def denormalize(self, z: Tensor) -> Tensor:  # (B, C, T') normalised -> raw
        return z * self.latent_std[:, None] + self.latent_mean[:, None]

    def encode_latents(self, wav: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Normalised latents (B, C, T / hop): the posterior mean, or a sample when ``sample``."""
        posterior = self.encode(wav)
        z = posterior.sample(generator) if sample else posterior.mean  # (B, C, T')
        return self.normalize(z)

    def decode_latents(self, z: Tensor) -> Tensor:
        """Normalised latents (B, C, T') -> waveform (B, 1, T' * hop)."""
        return self.decode(self.denormalize(z))

    @torch.no_grad()
    def fit_latent_stats(self, latents: Tensor) -> None:
        """Set the per-channel mean / std from raw latents (N, C, T') (e.g. posterior means of training clips)."""
        if latents.dim() != 3 or latents.shape[1] != self.latent_channels or latents.numel() == 0:
            raise ValueError(
                f"fit_latent_stats: expected raw latents of shape (N, {self.latent_channels}, T') with N, T' > 0, "
                f"got {tuple(latents.shape)}"
            )
        latents = latents.to(self.latent_mean.device, torch.float64)
        self.latent_mean.copy_(latents.mean(dim=(0, 2)))  # (C,)
        self.latent_std.copy_(latents.std(dim=(0, 2), correction=0).clamp_min(1e-5))  # (C,)

    def _check_waveform(self, wav: Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"encode: expected a mono waveform of shape (B, 1, T), got {tuple(wav.shape)}")
        if wav.shape[-1] == 0 or wav.shape[-1] % self.hop_length:
            raise ValueError(
                f"encode: the waveform length {wav.shape[-1]} must be a positive multiple of the hop length "
                f"{self.hop_length} (pad it, e.g. with pad_to_hop)"
            )


def pad_to_hop(wav: Tensor, hop_length: int) -> Tensor:
    """Right-pad (..., T) with zeros to the next multiple of ``hop_length``."""
    extra = (-wav.shape[-1]) % hop_length
    return nn.functional.pad(wav, (0, extra)) if extra else wav
