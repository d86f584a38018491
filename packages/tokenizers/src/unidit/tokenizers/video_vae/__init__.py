"""Causal video VAE (LTX-Video, HaCohen et al. 2024): model, losses, metrics, data and training."""

from unidit.tokenizers.gaussian import DiagonalGaussian
from unidit.tokenizers.video_vae.config import PRESETS, VideoVAEConfig, video_vae_config
from unidit.tokenizers.video_vae.data import VideoClipDataset, load_video_folder, to_model_range, to_uint8
from unidit.tokenizers.video_vae.metrics import psnr, ssim
from unidit.tokenizers.video_vae.model import VideoVAE
from unidit.tokenizers.video_vae.module import VideoVAETraining

__all__ = [
    "PRESETS",
    "DiagonalGaussian",
    "VideoClipDataset",
    "VideoVAE",
    "VideoVAEConfig",
    "VideoVAETraining",
    "load_video_folder",
    "psnr",
    "ssim",
    "to_model_range",
    "to_uint8",
    "video_vae_config",
]
