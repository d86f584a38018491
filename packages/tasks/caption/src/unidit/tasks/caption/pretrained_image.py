"""Frozen image encoders for the captioner: a Hugging Face vision model, or unidit's own video VAE on one frame.

LaDiC (Wang et al. 2024, §4.1) captions from a frozen pretrained encoder's
patch features (BLIP's ViT). Two such choices stand beside the small
convolutional :class:`~unidit.tasks.caption.image_encoder.ImageEncoder` trained
with the task (``image_encoder`` of :class:`~unidit.tasks.caption.denoiser.CaptionDenoiserConfig`):

- ``"hf:<model id or folder>"``: any Hugging Face vision model whose output has a
  ``last_hidden_state`` ``(B, S, H)`` (ViT, DeiT, DINOv2, CLIP's vision tower, ...);
  every hidden state is one context token.
- ``"video-vae:<folder>"``: the encoder of a ``unidit fit video-vae`` run on a
  single frame (its causal first frame is encoded on its own, so a picture is a
  one-frame clip); every latent cell ``(C, H/s, W/s)`` is one token. The latent
  has few channels (4 in the small presets), so a trained 3×3 convolution widens
  it before the projection.

Both stay frozen (eval mode, no gradient); only the projection into the
backbone's context width (and the convolution) trains, plus a learned embedding
of each token's position.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class FrozenEncoder(nn.Module):
    """Shared behaviour: a frozen ``backbone`` that stays in eval mode; trained layers on top."""

    backbone: nn.Module

    def freeze(self) -> None:
        self.backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FrozenEncoder":
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def num_tokens(self) -> int:
        return self.position.shape[0]


class HuggingFaceImageEncoder(FrozenEncoder):
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, S, out_dim)`` tokens from a frozen Hugging Face vision model.

    Pictures are resized (bilinear) to the model's ``config.image_size`` and
    normalised with its image processor's mean/std (0.5/0.5, i.e. [-1, 1], when
    the folder has no processor config).
    """

    def __init__(self, name: str, image_size: int, out_dim: int) -> None:
        super().__init__()
        from transformers import AutoImageProcessor, AutoModel

        local = os.path.isdir(name)
        try:
            self.backbone = AutoModel.from_pretrained(name, local_files_only=local)
        except (OSError, ValueError) as error:
            raise ValueError(f"image_encoder hf:{name}: could not load a Hugging Face vision model there "
                             f"({error})") from None
        self.freeze()
        try:
            processor = AutoImageProcessor.from_pretrained(name, local_files_only=local)
            mean, std = processor.image_mean, processor.image_std
        except (OSError, ValueError, AttributeError):
            mean, std = [0.5] * 3, [0.5] * 3
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        config = self.backbone.config
        self.input_size = int(getattr(config, "image_size", image_size))
        self.image_size = int(image_size)
        with torch.no_grad():
            probe = self._hidden(torch.zeros(1, 3, image_size, image_size))  # (1, S, H)
        self.proj = nn.Linear(probe.shape[-1], out_dim)
        self.position = nn.Parameter(torch.randn(probe.shape[1], out_dim) * 0.02)  # (S, Dc)

    def _hidden(self, images: Tensor) -> Tensor:  # (B, 3, H, W) in [-1, 1] -> (B, S, H)
        pixels = (images + 1.0) / 2.0  # [0, 1]
        if pixels.shape[-1] != self.input_size:
            pixels = F.interpolate(pixels, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False)
        pixels = (pixels - self.mean) / self.std
        with torch.no_grad():
            out = self.backbone(pixel_values=pixels)
        if not hasattr(out, "last_hidden_state"):
            raise ValueError("image_encoder hf: the model's output has no last_hidden_state; expected a vision "
                             "encoder such as ViT, DeiT, DINOv2 or a CLIP vision model")
        return out.last_hidden_state

    def forward(self, images: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, S, Dc)
        if images.dim() != 4 or images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"images: expected (B, 3, {self.image_size}, {self.image_size}) pictures in [-1, 1], "
                             f"got {tuple(images.shape)}")
        return self.proj(self._hidden(images)) + self.position


class VideoVAEFrameEncoder(FrozenEncoder):
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, (H/s)·(W/s), out_dim)`` tokens from a frozen unidit video VAE."""

    def __init__(self, folder: str, image_size: int, out_dim: int, width: int = 64) -> None:
        super().__init__()
        from unidit.tokenizers.video_vae import VideoVAE

        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise FileNotFoundError(f"image_encoder video-vae:{folder}: no config.json there; expected the model "
                                    "folder of a `unidit fit video-vae` run (<run>/model)")
        self.backbone = VideoVAE.from_pretrained(folder)
        self.freeze()
        compression = self.backbone.spatial_compression
        if image_size % compression:
            raise ValueError(f"image_size {image_size}: the video VAE at {folder} needs a multiple of {compression}")
        self.image_size, cells = int(image_size), (image_size // compression) ** 2
        self.widen = nn.Sequential(nn.Conv2d(self.backbone.latent_channels, width, 3, padding=1), nn.SiLU())
        self.proj = nn.Linear(width, out_dim)
        self.position = nn.Parameter(torch.randn(cells, out_dim) * 0.02)  # (S, Dc)

    def forward(self, images: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, S, Dc)
        if images.dim() != 4 or images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"images: expected (B, 3, {self.image_size}, {self.image_size}) pictures in [-1, 1], "
                             f"got {tuple(images.shape)}")
        with torch.no_grad():
            latents = self.backbone.encode_latents(images[:, :, None])[:, :, 0]  # (B, C, h, w): a 1-frame clip
        cells = self.widen(latents)  # (B, W, h, w)
        return self.proj(rearrange(cells, "b c h w -> b (h w) c")) + self.position


def build_image_encoder(spec: str, image_size: int, grid: int, channels: int, out_dim: int) -> nn.Module:
    """The encoder ``spec`` names: ``"conv"`` (trained with the task), ``"hf:<id or folder>"`` or
    ``"video-vae:<folder>"`` (frozen, see the module docstring)."""
    from unidit.tasks.caption.image_encoder import ImageEncoder

    kind, _, where = spec.partition(":")
    if kind == "conv" and not where:
        return ImageEncoder(image_size, grid, channels, out_dim)
    if kind == "hf" and where:
        return HuggingFaceImageEncoder(where, image_size, out_dim)
    if kind == "video-vae" and where:
        return VideoVAEFrameEncoder(where, image_size, out_dim)
    raise ValueError(f"image_encoder {spec!r}: expected 'conv', 'hf:<model id or folder>' or "
                     "'video-vae:<folder of a unidit fit video-vae run>'")
