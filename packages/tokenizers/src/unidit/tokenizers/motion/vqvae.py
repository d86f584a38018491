"""The motion VQ-VAE: normalised HumanML3D features (B, T, D) <-> discrete codes (B, T / 4).

T2M-GPT (Zhang et al., CVPR 2023, §3.1) / MoMask (Guo et al., CVPR 2024, §3.1) / M2DM (Chi et al.,
2023): the encoder of :mod:`~unidit.tokenizers.motion.networks` down-samples time 4x, each latent
frame is replaced by its nearest code (``vector_quantize_pytorch``: EMA codebook updates, dead codes
reset to batch encodings, optional k-means init; residual VQ for MoMask), and the decoder maps codes
back to features. Features are normalised with the dataset's Mean / Std, kept as buffers so that
``save_pretrained`` stores them beside the weights (safetensors + config.json).

Training loss (T2M-GPT): smooth-L1 on all features + ``velocity_weight`` x smooth-L1 on the joint
velocity channels + the quantiser's commitment term.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from unidit.tokenizers.motion.config import MotionVQConfig
from unidit.tokenizers.motion.humanml3d import feature_slices
from unidit.tokenizers.motion.networks import build_networks
from vector_quantize_pytorch import ResidualVQ, VectorQuantize


class MotionVQVAE(nn.Module, PyTorchModelHubMixin, library_name="unidit", tags=["motion", "vq-vae", "humanml3d"]):
    """Motion tokenizer; ``save_pretrained`` / ``from_pretrained`` keep the config and the Mean / Std."""

    def __init__(self, config: MotionVQConfig):
        super().__init__()
        if isinstance(config, dict):
            config = MotionVQConfig(**config)
        self.config = config
        self.encoder, self.decoder = build_networks(config)
        vq_args = dict(
            dim=config.code_dim,
            codebook_size=config.codebook_size,
            decay=config.ema_decay,
            commitment_weight=config.commitment_weight,
            threshold_ema_dead_code=config.dead_code_threshold,
            kmeans_init=config.kmeans_init,
        )
        if config.num_quantizers == 1:
            self.quantizer = VectorQuantize(**vq_args)
        else:
            self.quantizer = ResidualVQ(
                num_quantizers=config.num_quantizers, quantize_dropout=config.quantize_dropout > 0, **vq_args
            )
        self.register_buffer("mean", torch.zeros(config.feature_dim))  # (D,)
        self.register_buffer("std", torch.ones(config.feature_dim))  # (D,)

    @property
    def frames_per_code(self) -> int:
        return self.config.frames_per_code

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store the dataset's feature Mean / Std (D,) used by :meth:`normalize`."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))

    def normalize(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std

    def denormalize(self, features: Tensor) -> Tensor:
        return features * self.std + self.mean

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.config.feature_dim:
            raise ValueError(f"expected features (B, T, {self.config.feature_dim}), got {tuple(x.shape)}")
        if x.shape[1] % self.frames_per_code:
            raise ValueError(f"clip length {x.shape[1]} is not a multiple of {self.frames_per_code} frames per code")

    def _quantize(self, latents: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T', C) -> quantised (B, T', C), indices (B, T'[, Q]), commitment loss (scalar)."""
        if isinstance(self.quantizer, ResidualVQ):
            self.quantizer.quantize_dropout = self.training and random.random() < self.config.quantize_dropout
            quantized, indices, losses = self.quantizer(latents)
            return quantized, indices, losses.sum()
        quantized, indices, loss = self.quantizer(latents)
        return quantized, indices, loss

    def encode(self, x: Tensor) -> Tensor:
        """Normalised features (B, T, D) -> code indices (B, T / 4) (residual VQ: (B, T / 4, Q))."""
        self._check(x)
        latents = rearrange(self.encoder(rearrange(x, "b t d -> b d t")), "b c t -> b t c")  # (B, T', C)
        return self._quantize(latents)[1]

    def decode(self, indices: Tensor) -> Tensor:
        """Code indices (B, T'[, Q]) -> normalised features (B, 4 T', D)."""
        codes = self.quantizer.get_output_from_indices(indices)  # (B, T', C)
        return rearrange(self.decoder(rearrange(codes, "b t c -> b c t")), "b d t -> b t d")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised features (B, T, D) -> reconstruction (B, T, D), indices, commitment loss."""
        self._check(x)
        latents = rearrange(self.encoder(rearrange(x, "b t d -> b d t")), "b c t -> b t c")  # (B, T', C)
        quantized, indices, commitment = self._quantize(latents)
        reconstruction = rearrange(self.decoder(rearrange(quantized, "b t c -> b c t")), "b d t -> b t d")
        return reconstruction, indices, commitment


class MotionVQLoss(nn.Module):
    """smooth-L1(features) + ``velocity_weight`` x smooth-L1(joint-velocity channels) + commitment."""

    def __init__(self, num_joints: int = 22, velocity_weight: float = 0.5):
        super().__init__()
        self.velocity = feature_slices(num_joints)["velocity"]
        self.velocity_weight = velocity_weight

    def forward(self, reconstruction: Tensor, target: Tensor, commitment: Tensor) -> dict[str, Tensor]:
        recon = F.smooth_l1_loss(reconstruction, target)
        velocity = F.smooth_l1_loss(reconstruction[..., self.velocity], target[..., self.velocity])
        loss = recon + self.velocity_weight * velocity + commitment
        return {"loss": loss, "recon": recon.detach(), "velocity": velocity.detach(), "commitment": commitment.detach()}
