"""Fixtures of the t2v tests: a small embedded set and a tiny (randomly initialised) causal video VAE."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange
from unidit.tasks.t2v.data import embedded_split
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config


@pytest.fixture(scope="session")
def t2v_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("t2v-cache")


@pytest.fixture(scope="session")
def small_clips(t2v_cache):
    """24 embedded validation clips, uint8 (24, 17, 64, 64, 3), with captions and specs."""
    return embedded_split("val", seed=0, cache_dir=t2v_cache, size=24)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory, small_clips):
    """A tiny VideoVAE (8x spatial, 4x temporal, 4 channels) with latent statistics fitted, saved to disk."""
    torch.manual_seed(0)
    vae = VideoVAE(video_vae_config("tiny")).eval()
    pixels = rearrange(torch.from_numpy(small_clips.videos[:8]).float() / 127.5 - 1.0, "b f h w c -> b c f h w")
    with torch.no_grad():
        vae.fit_latent_stats(vae.encode(pixels).mode())
    folder = tmp_path_factory.mktemp("tiny-vae")
    vae.save_pretrained(folder)
    return folder
