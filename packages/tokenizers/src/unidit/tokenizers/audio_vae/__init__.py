"""1D waveform VAE (Oobleck / EzAudio): model, tiling, losses, metrics, data and training module."""

from unidit.tokenizers.audio_vae.config import AUDIO_VAE_PRESETS, AudioVAEConfig, audio_vae_config
from unidit.tokenizers.audio_vae.data import AudioClipDataset, AudioVAEDataModule
from unidit.tokenizers.audio_vae.losses import AudioVAELoss
from unidit.tokenizers.audio_vae.metrics import (
    baseline_metrics,
    mel_l1,
    mr_stft_distance,
    reconstruct,
    reconstruction_metrics,
    si_sdr,
)
from unidit.tokenizers.audio_vae.model import AudioVAE, pad_to_hop
from unidit.tokenizers.audio_vae.module import AudioVAETraining
from unidit.tokenizers.audio_vae.tiling import receptive_context, tiled_decode, tiled_encode
from unidit.tokenizers.gaussian import DiagonalGaussian

__all__ = [
    "AUDIO_VAE_PRESETS",
    "AudioClipDataset",
    "AudioVAE",
    "AudioVAEConfig",
    "AudioVAEDataModule",
    "AudioVAELoss",
    "AudioVAETraining",
    "DiagonalGaussian",
    "audio_vae_config",
    "baseline_metrics",
    "mel_l1",
    "mr_stft_distance",
    "pad_to_hop",
    "receptive_context",
    "reconstruct",
    "reconstruction_metrics",
    "si_sdr",
    "tiled_decode",
    "tiled_encode",
]
