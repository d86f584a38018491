"""Tokenizer throughput: our VAEs against diffusers' at matched channels and compression.

* audio: ``AudioVAE`` (Oobleck-style, EzAudio) vs ``AutoencoderOobleck`` with the same
  base width, channel multipliers, strides (hop 320) and latent channels;
* video: ``VideoVAE`` (LTX-Video style, ``ltx`` preset: 32×32×8, 128 channels) vs
  ``AutoencoderKLLTXVideo`` with the same stage widths, compression and latent channels.

Encode and decode are timed separately (posterior mean; decode of that latent). The video pair
also runs on a longer clip, and once more with ours streamed over it in time chunks
(``latent_frames_per_chunk``) against the peer on the whole clip.
Throughput is seconds of audio, or frames of video, per second of compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config

from backbone_step import n_params
from harness import PairResult, Runtime, run_pair


@dataclass
class VAESizes:
    audio_preset: str = "base"
    # Oobleck ties its first width to twice the latent channels (its encoder's last conv maps back to
    # encoder_hidden_size, split into mean and log-variance): Stable Audio Open's 128 / 64.
    audio_base_channels: int = 128
    audio_batch: int = 2
    audio_seconds: float = 2.0
    video_preset: str = "ltx"
    video_batch: int = 1
    video_frames: int = 9
    video_size: int = 128
    video_blocks: int = 2  # residual blocks per stage on both sides
    # LTX's timestep-conditioned decoder is off on both sides: diffusers' AutoencoderKLLTXVideo
    # built with our block layout fails in its up blocks when given a timestep (diffusers 0.42).
    video_timestep_conditioning: bool = False
    # a longer clip, ours streamed through the VAE a few latent frames at a time (0: no such case)
    video_long_frames: int = 33
    video_stream_chunk: int = 1


QUICK = VAESizes(audio_preset="tiny", audio_base_channels=4, audio_seconds=0.2, video_preset="tiny", video_frames=5, video_size=32,
                 video_blocks=1, video_long_frames=9)


def audio_pair(s: VAESizes):
    from diffusers import AutoencoderOobleck

    config = audio_vae_config(s.audio_preset, base_channels=s.audio_base_channels,
                              latent_channels=s.audio_base_channels // 2)
    ours = AudioVAE(config).eval()
    theirs = AutoencoderOobleck(
        encoder_hidden_size=config.base_channels, downsampling_ratios=list(config.strides),
        channel_multiples=list(config.channel_mults), decoder_channels=config.base_channels,
        decoder_input_channels=config.latent_channels, audio_channels=1, sampling_rate=config.sample_rate,
    ).eval()
    samples = int(s.audio_seconds * config.sample_rate) // config.hop_length * config.hop_length
    wav = torch.randn(s.audio_batch, 1, samples, generator=torch.Generator().manual_seed(0)) * 0.1
    units = s.audio_batch * samples / config.sample_rate  # seconds of audio per call
    return ours, theirs, wav, units, "s audio"


def video_pair(s: VAESizes, frames: int):
    from diffusers import AutoencoderKLLTXVideo

    config = video_vae_config(s.video_preset, blocks_per_stage=s.video_blocks, mid_blocks=s.video_blocks,
                              timestep_conditioning=s.video_timestep_conditioning)
    ours = VideoVAE(config).eval()
    stages = len(config.channels)
    downsampled = config.temporal_compression.bit_length() - 1  # LTX's down blocks each scale 2x2x2
    if config.patch_size * 2**downsampled != config.spatial_compression or downsampled > stages:
        raise ValueError(f"no AutoencoderKLLTXVideo matches {config}")
    scaling = (True,) * downsampled + (False,) * (stages - downsampled)
    # LTX's encoder: patchify, then one down block per width, the first ones ending in a 2x2x2
    # space-time-to-depth conv (spatio_temporal_scaling); same total compression as ours.
    theirs = AutoencoderKLLTXVideo(
        latent_channels=config.latent_channels, block_out_channels=tuple(config.channels),
        decoder_block_out_channels=tuple(config.channels),
        layers_per_block=(s.video_blocks,) * (stages + 1), decoder_layers_per_block=(s.video_blocks,) * (stages + 1),
        spatio_temporal_scaling=scaling, decoder_spatio_temporal_scaling=scaling,
        decoder_inject_noise=(False,) * (stages + 1), downsample_type=("conv",) * stages,
        upsample_residual=(False,) * stages, upsample_factor=(1,) * stages,
        timestep_conditioning=config.timestep_conditioning, patch_size=config.patch_size, patch_size_t=1,
    ).eval()
    video = torch.rand(s.video_batch, 3, frames, s.video_size, s.video_size,
                       generator=torch.Generator().manual_seed(0)) * 2 - 1
    return ours, theirs, video, s.video_batch * frames, "frames"


def run(s: VAESizes, rounds: int, log=print, runtime: Runtime | None = None) -> list[dict]:
    runtime = runtime or Runtime()
    rows = []
    # (ours, peer, inputs) makers and, per pair built, the ways ours runs: (row label, options)
    cases = [("AudioVAE", lambda: audio_pair(s), "AutoencoderOobleck", [("AudioVAE", {})]),
             ("VideoVAE", lambda: video_pair(s, s.video_frames), "AutoencoderKLLTXVideo", [("VideoVAE", {})])]
    if s.video_long_frames:
        cases.append(("VideoVAE", lambda: video_pair(s, s.video_long_frames), "AutoencoderKLLTXVideo", [
            ("VideoVAE", {}),
            (f"VideoVAE, streamed {s.video_stream_chunk} latent frame a chunk",
             {"latent_frames_per_chunk": s.video_stream_chunk}),
        ]))
    for kind, make, peer, variants in cases:
        torch.manual_seed(0)
        ours, theirs, x, units, unit = make()
        ours, theirs, x = ours.to(runtime.device), theirs.to(runtime.device), x.to(runtime.device)
        with torch.no_grad():
            z_ours = ours.encode(x).mode()
            z_theirs = theirs.encode(x).latent_dist.mode()
        timestep = {"timestep": torch.full((x.shape[0],), 0.05, device=x.device)} if kind == "VideoVAE" \
            and ours.config.timestep_conditioning else {}

        @torch.no_grad()
        def theirs_encode():
            return theirs.encode(x).latent_dist.mode()

        @torch.no_grad()
        def theirs_decode():
            if timestep:
                return theirs.decode(z_theirs, temb=timestep["timestep"]).sample
            return theirs.decode(z_theirs).sample

        for name, options in variants:
            @torch.no_grad()
            def ours_encode():
                return ours.encode(x, **options).mode()

            @torch.no_grad()
            def ours_decode():
                return ours.decode(z_ours, **timestep, **options)

            for stage, fa, fb in (("encode", ours_encode, theirs_encode), ("decode", ours_decode, theirs_decode)):
                log(f"  {name} vs {peer}: {stage} ...")
                res: PairResult = run_pair(fa, fb, rounds, names=(name, peer), runtime=runtime)
                rows.append(dict(ours=name, theirs=peer, stage=stage, units=units, unit=unit,
                                 params_ours=n_params(ours), params_theirs=n_params(theirs),
                                 latent_ours=tuple(z_ours.shape), latent_theirs=tuple(z_theirs.shape),
                                 input=tuple(x.shape), result=res))
        del ours, theirs
    return rows
