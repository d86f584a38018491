"""The causal video VAE of LTX-Video (HaCohen et al. 2024, the video VAE section).

Encoder: patchify pixels into channels (``p x p`` patches, 3 -> 3p^2 channels,
so every convolution runs at ``1/p`` resolution), then per stage causal
residual blocks and a space/time-to-depth downsampling, residual blocks at the
lowest resolution, and a KL bottleneck (:class:`DiagonalGaussian`). Decoder:
the mirror image with depth-to-space/time upsampling, ending in an
unpatchify. All convolutions are causal in time, so a clip of ``1 + tc*k``
frames maps to ``1 + k`` latent frames and latent frame ``j`` only sees input
frames ``<= j*tc`` (frame 0 is encoded alone, like an image).

Wherever channel counts allow, each layer that changes shape has a
parameter-free shortcut (DC-AE's residual autoencoding, Chen et al. 2024),
from the patchified pixels to the latent means and back, and every convolution
beside a shortcut starts at zero: an untrained VAE already reconstructs block
averages (nearly as well as bilinear downsampling by the same factor when the
latent is colour-aligned), so minutes of CPU training refine a working
autoencoder instead of building one from noise. (Without the shortcut path the
small preset stayed several dB below that after the same training.)

With ``timestep_conditioning`` the decoder's norms are modulated by a
timestep: it learns to decode latents noised as ``(1 - t) z + t n``, which
lets a diffusion model hand over a slightly noisy latent for the last
denoising step (LTX decodes at ``t = 0.05``).

Latent statistics (``latent_mean``, ``latent_std``, per channel) are identity
until :meth:`VideoVAE.fit_latent_stats`; :meth:`encode_latents` /
:meth:`decode_latents` work in the normalised space a diffusion model wants.
"""

from __future__ import annotations

import torch
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from unidit.tokenizers.gaussian import DiagonalGaussian
from unidit.tokenizers.video_io import check_frame_count
from unidit.tokenizers.video_vae.blocks import (
    DepthToSpaceTime,
    FrameGroupNorm,
    ResBlock3d,
    ShortcutConv,
    SpaceTimeToDepth,
    TimestepEmbedding,
    channel_shortcut,
    has_channel_shortcut,
    norm_silu_conv,
    zero_init_,
)
from unidit.tokenizers.video_vae.causal_conv import CausalConv3d
from unidit.tokenizers.video_vae.config import VideoVAEConfig
from unidit.tokenizers.video_vae.streaming import check_chunk, chunk_bounds, run_in_chunks


class VideoEncoder(nn.Module):
    """``(B, 3, 1 + tc*k, H, W) -> (B, 2C, 1 + k, H/s, W/s)`` posterior parameters."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        p = config.patch_size
        self.patch_size = p
        self.conv_in = ShortcutConv(3 * p * p, config.channels[0])
        stages = []
        for i, ((ft, fs), width) in enumerate(zip(config.downsample, config.channels)):
            next_width = config.channels[min(i + 1, len(config.channels) - 1)]
            blocks = [ResBlock3d(width, width) for _ in range(config.blocks_per_stage)]
            stages.append(nn.Sequential(*blocks, SpaceTimeToDepth(width, next_width, ft, fs)))
        self.stages = nn.Sequential(*stages)
        top = config.channels[-1]
        self.mid = nn.Sequential(*[ResBlock3d(top, top) for _ in range(config.mid_blocks)])
        self.latent_channels = config.latent_channels
        self.norm_out = FrameGroupNorm(top)
        self.conv_out = CausalConv3d(top, 2 * config.latent_channels, 3)
        # Start with a small posterior variance: a unit-variance sample would drown the
        # block averages the shortcuts carry, and the KL term only slowly pulls it back.
        with torch.no_grad():
            if has_channel_shortcut(top, config.latent_channels):
                zero_init_(self.conv_out)  # the means start as channel-group averages
            self.conv_out.conv.weight[config.latent_channels :].zero_()
            self.conv_out.conv.bias[config.latent_channels :].fill_(config.initial_logvar)

    def forward(self, video: Tensor) -> Tensor:
        x = rearrange(video, "b c t (h p) (w q) -> b (c p q) t h w", p=self.patch_size, q=self.patch_size)
        x = self.conv_in(x)  # (B, C0, T, H/p, W/p)
        x = self.mid(self.stages(x))  # (B, C_top, 1 + k, H/s, W/s)
        params = norm_silu_conv(self.norm_out, self.conv_out, x)  # (B, 2C, 1 + k, H/s, W/s)
        shortcut = channel_shortcut(x, self.latent_channels)  # means start from channel-group averages
        if shortcut is None:
            return params
        return params + nn.functional.pad(shortcut, (0, 0, 0, 0, 0, 0, 0, self.latent_channels))


class VideoDecoder(nn.Module):
    """``(B, C, 1 + k, h, w)`` latents (+ timestep) ``-> (B, 3, 1 + tc*k, h*s, w*s)``."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        p = config.patch_size
        self.patch_size = p
        widths = config.channels[::-1]  # decoder stages go from the top width down
        factors = config.downsample[::-1]
        cond_dim = 4 * widths[0] if config.timestep_conditioning else None
        self.time_embed = TimestepEmbedding(cond_dim) if cond_dim else None
        self.conv_in = ShortcutConv(config.latent_channels, widths[0])
        self.mid = nn.ModuleList([ResBlock3d(widths[0], widths[0], cond_dim) for _ in range(config.mid_blocks)])
        self.upsamples = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (ft, fs) in enumerate(factors):
            width = widths[i]
            out_width = widths[min(i + 1, len(widths) - 1)]
            self.upsamples.append(DepthToSpaceTime(width, out_width, ft, fs))
            blocks = [ResBlock3d(out_width, out_width, cond_dim) for _ in range(config.blocks_per_stage)]
            self.stages.append(nn.ModuleList(blocks))
        self.norm_out = FrameGroupNorm(widths[-1], cond_dim)
        self.conv_out = CausalConv3d(widths[-1], 3 * p * p, 3)
        if has_channel_shortcut(widths[-1], 3 * p * p):
            zero_init_(self.conv_out)

    def forward(self, z: Tensor, timestep: Tensor | None = None) -> Tensor:
        cond = None
        if self.time_embed is not None:
            if timestep is None:
                timestep = torch.zeros(z.shape[0], device=z.device)
            cond = self.time_embed(timestep.to(z.device).float().reshape(-1).expand(z.shape[0]))  # (B, D)
        x = self.conv_in(z)  # (B, C_top, 1 + k, h, w)
        for block in self.mid:
            x = block(x, cond)
        for upsample, blocks in zip(self.upsamples, self.stages):
            x = upsample(x)  # (B, C', 1 + ft*k', fs*h', fs*w')
            for block in blocks:
                x = block(x, cond)
        out = norm_silu_conv(self.norm_out, self.conv_out, x, cond)  # (B, 3p^2, T, H/p, W/p)
        shortcut = channel_shortcut(x, out.shape[1])
        x = out if shortcut is None else out + shortcut
        return rearrange(x, "b (c p q) t h w -> b c t (h p) (w q)", p=self.patch_size, q=self.patch_size)


class VideoVAE(nn.Module, PyTorchModelHubMixin):
    """Causal video VAE; ``save_pretrained`` / ``from_pretrained`` keep the config and latent statistics."""

    def __init__(self, config: VideoVAEConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = VideoVAEConfig()
        if isinstance(config, dict):
            config = VideoVAEConfig(**config)
        self.config = config
        self.spatial_compression = config.spatial_compression
        self.temporal_compression = config.temporal_compression
        self.latent_channels = config.latent_channels
        self.encoder = VideoEncoder(config)
        self.decoder = VideoDecoder(config)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    # -- shapes --------------------------------------------------------------------
    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(C, 1 + k, H/s, W/s)`` for a clip of ``frames`` x ``height`` x ``width``."""
        self.check_video_shape(frames, height, width)
        s, tc = self.spatial_compression, self.temporal_compression
        return self.latent_channels, 1 + (frames - 1) // tc, height // s, width // s

    def check_video_shape(self, frames: int, height: int, width: int) -> None:
        check_frame_count(frames, self.temporal_compression)
        s = self.spatial_compression
        if height % s or width % s:
            raise ValueError(
                f"video height and width must be multiples of the spatial compression {s}, got {height}x{width}"
            )

    # -- the VAE -------------------------------------------------------------------
    def encode(self, video: Tensor, latent_frames_per_chunk: int | None = None) -> DiagonalGaussian:
        """``video (B, 3, 1 + tc*k, H, W)`` in [-1, 1] -> posterior over raw latents ``(B, C, 1 + k, H/s, W/s)``.

        With ``latent_frames_per_chunk = n`` the clip streams through the encoder
        in time chunks of ``tc*n`` frames (the first chunk ``1 + tc*(n-1)``), so
        memory scales with the chunk; the result equals the whole-clip encoding
        up to float rounding (:mod:`~unidit.tokenizers.video_vae.streaming`).
        """
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected a video batch (B, 3, F, H, W), got shape {tuple(video.shape)}")
        self.check_video_shape(*video.shape[2:])
        if latent_frames_per_chunk is None:
            params = self.encoder(video)
        else:
            tc, n = self.temporal_compression, check_chunk(latent_frames_per_chunk)
            params = run_in_chunks(self.encoder, video, chunk_bounds(video.shape[2], 1 + tc * (n - 1), tc * n))
        clamp = self.config.logvar_clamp
        return DiagonalGaussian.from_moments(params, (-clamp, clamp))

    def decode(self, z: Tensor, timestep: Tensor | float | None = None,
               latent_frames_per_chunk: int | None = None) -> Tensor:
        """Raw latents ``(B, C, 1 + k, h, w)`` -> video ``(B, 3, 1 + tc*k, h*s, w*s)`` (unclamped).

        ``timestep`` (scalar or ``(B,)``) is the noise level of ``z`` for a
        timestep-conditioned decoder (None = clean, 0); other decoders ignore it.
        ``z`` is used as given: to decode as LTX does, noise a clean latent to the
        timestep first (:meth:`noise_latents`). With ``latent_frames_per_chunk``
        the latents stream through the decoder that many frames at a time, as in
        :meth:`encode`.
        """
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents (B, {self.latent_channels}, T, h, w), got shape {tuple(z.shape)}")
        if timestep is not None and not torch.is_tensor(timestep):
            timestep = torch.tensor(float(timestep))
        if latent_frames_per_chunk is None:
            return self.decoder(z, timestep)
        n = check_chunk(latent_frames_per_chunk)
        return run_in_chunks(self.decoder, z, chunk_bounds(z.shape[2], n, n), timestep)

    @staticmethod
    def noise_latents(z: Tensor, timestep: Tensor | float, generator: torch.Generator | None = None) -> Tensor:
        """``(1 - t) z + t n`` with ``n ~ N(0, I)``: the noised latent a timestep-conditioned decoder expects."""
        t = torch.as_tensor(timestep, dtype=z.dtype, device=z.device).reshape(-1, *([1] * (z.ndim - 1)))
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return (1 - t) * z + t * noise

    def forward(self, video: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruct through a posterior sample: ``(reconstruction (B, 3, F, H, W), posterior)``."""
        posterior = self.encode(video)
        return self.decode(posterior.sample()), posterior

    # -- normalised latents for diffusion -----------------------------------------------
    def _stats(self, z: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.latent_mean.to(z).reshape(shape), self.latent_std.to(z).reshape(shape)

    def encode_latents(self, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Normalised latents ``(B, C, 1 + k, H/s, W/s)``: posterior mean (or a sample), standardised per channel."""
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample else posterior.mode()
        mean, std = self._stats(z)
        return (z - mean) / std

    def decode_latents(self, z: Tensor, timestep: Tensor | float | None = None) -> Tensor:
        """Normalised latents -> video ``(B, 3, F, H, W)`` clamped to [-1, 1] (``timestep`` as in :meth:`decode`)."""
        mean, std = self._stats(z)
        return self.decode(z * std + mean, timestep).clamp(-1.0, 1.0)

    @torch.no_grad()
    def fit_latent_stats(self, latents: Tensor) -> None:
        """Set per-channel mean/std from raw latents ``(N, C, ...)`` so normalised latents have zero mean, unit std."""
        if latents.ndim < 2 or latents.shape[1] != self.latent_channels:
            expected = f"(N, {self.latent_channels}, ...)"
            raise ValueError(f"expected raw latents {expected}, got shape {tuple(latents.shape)}")
        per_channel = latents.detach().float().transpose(0, 1).reshape(self.latent_channels, -1)  # (C, N*...)
        if per_channel.shape[1] < 2:
            raise ValueError("need at least two latent values per channel to fit statistics")
        self.latent_mean.copy_(per_channel.mean(dim=1))
        self.latent_std.copy_(per_channel.std(dim=1).clamp_min(1e-6))
