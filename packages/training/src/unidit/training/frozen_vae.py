"""A task that diffuses the 1-axis latents of a frozen audio VAE (shared by t2a and tts).

The VAE is loaded frozen (``eval``, no gradients), checked against the
denoiser's latent channels, and kept out of training mode whatever Lightning
does with the task.  :class:`FrozenVAETask` adds what both tasks do with it
around their own denoiser (``self.denoiser``, with ``config.patch_size`` and
``config.latent_channels``): cut training latents to whole patches, and sample
from noise with some frames held bit-identical (in-painting, continuation, a
voice prompt).  The VAE class is passed in, so this module needs no tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor
from unidit.backbones.layout import PackedBatch, grid_mask_to_tokens, unpack
from unidit.training.padded_conditioning import conditioning_for
from unidit.training.sampling import SamplingOptions


def load_frozen_vae(vae_class, path: str, latent_channels: int):
    """The ``vae_class`` VAE saved at ``path``, frozen, checked against the denoiser's channel count."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"audio VAE not found: {folder} (expected config.json + model.safetensors, "
                                "e.g. <run>/model of `unidit fit audio-vae`)")
    vae = vae_class.from_pretrained(str(folder)).eval().requires_grad_(False)
    if vae.latent_channels != latent_channels:
        raise ValueError(f"the audio VAE at {folder} has {vae.latent_channels} latent channels; "
                         f"model.latent_channels is {latent_channels}")
    return vae


def saved_latent_channels(path: str) -> int:
    """The latent channels written in a saved VAE's ``config.json`` (16 when not written)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"audio VAE not found: {path} (expected config.json + model.safetensors)")
    return int(json.loads(config.read_text()).get("latent_channels", 16))


class FrozenVAETask:
    """Mixin for a flow task holding ``self.vae`` (frozen, or None) and ``self.denoiser``; list it first."""

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # frozen: never in training mode
        return self

    @property
    def patch_size(self) -> int:
        return self.denoiser.config.patch_size

    @property
    def sample_rate(self) -> int:
        return self.require_vae().sample_rate

    def require_vae(self):
        if self.vae is None:
            raise ValueError(f"this {type(self).__name__} has no audio VAE (model.vae is None); "
                             "it cannot encode or decode audio")
        return self.vae

    def whole_patch_frames(self, seconds: float, hop: int, rate: int) -> int:
        """Latent frames holding ``seconds`` of audio at ``rate`` Hz and ``hop`` samples a frame, in whole patches."""
        frames = math.ceil(round(seconds * rate) / hop)
        return max(self.patch_size, math.ceil(frames / self.patch_size) * self.patch_size)

    def pack_whole_patches(self, latents: list[Tensor]) -> PackedBatch:
        """Latents ``(C, T_i)`` cut to whole patches (``T_i % p == 0``), packed by the denoiser."""
        p = self.patch_size
        return self.denoiser.pack([z[:, : z.shape[1] - z.shape[1] % p] for z in latents])

    def sample_around(self, texts: list, known: list[Tensor], held_frames: list[Tensor],
                      options: SamplingOptions, use_ema: bool) -> list[Tensor]:
        """Latents ``(C, T_i)`` from seeded noise, frames ``held_frames[i]`` kept at ``known[i]`` (C, T_i)."""
        generator = torch.Generator().manual_seed(options.seed)
        noise = [torch.randn(z.shape, generator=generator) for z in known]  # (C, T_i) each
        packed = self.denoiser.pack(noise).to(self.device)
        known_tokens = self.denoiser.pack(known).tokens.to(self.device)  # (B, L, C·p)
        held = grid_mask_to_tokens(held_frames, packed).to(self.device)  # (B, L)
        cond = conditioning_for(packed, held, x=known_tokens)
        tokens = self.generate(texts, packed.tokens, options, cond=cond, use_ema=use_ema)  # (B, L, C·p)
        return [z.cpu() for z in unpack(tokens, packed)]
