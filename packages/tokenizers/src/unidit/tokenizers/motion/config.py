"""Hyper-parameters and named presets of the motion VQ-VAE.

Presets: ``t2m-gpt`` (Zhang et al., CVPR 2023: conv / dilated-ResNet, width 512, depth 3, dilation
growth 3, codebook 512 x 512, EMA + dead-code reset), ``momask`` (Guo et al., CVPR 2024: the same
network with a 6-layer residual VQ and quantizer dropout 0.2), ``m2dm`` (Chi et al., 2023: transformer
encoder / decoder with global self-attention), ``small`` (the CPU default of ``unidit fit motion-vq``)
and ``tiny`` (tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class MotionVQConfig:
    """Hyper-parameters of :class:`~unidit.tokenizers.motion.vqvae.MotionVQVAE`."""

    feature_dim: int = 263
    """Width of a motion frame (263 HumanML3D, 251 KIT-ML)."""
    num_joints: int = 22
    """Joints recovered from the features (22 HumanML3D, 21 KIT-ML)."""
    architecture: str = "conv"
    """``conv`` (dilated ResNet, T2M-GPT / MoMask) or ``transformer`` (global self-attention, M2DM)."""
    width: int = 512
    """Hidden channels."""
    depth: int = 3
    """Residual blocks per resolution (conv) or transformer layers per side (transformer)."""
    dilation_growth: int = 3
    """Dilation of the k-th residual block is growth**k (conv only)."""
    num_heads: int = 8
    """Attention heads (transformer only)."""
    down_sampling: int = 2
    """Stride-2 stages: the code rate is 1 / 2**down_sampling of the frame rate (2 -> 4x)."""
    codebook_size: int = 512
    """Codes per codebook."""
    code_dim: int = 512
    """Width of a code."""
    num_quantizers: int = 1
    """1: one VectorQuantize; >1: ResidualVQ layers (MoMask uses 6)."""
    quantize_dropout: float = 0.0
    """Probability that a training step keeps only a random prefix of the residual layers (MoMask 0.2)."""
    ema_decay: float = 0.99
    """EMA decay of the codebook updates."""
    commitment_weight: float = 0.02
    """Weight of the commitment loss (T2M-GPT)."""
    dead_code_threshold: float = 2.0
    """Codes whose EMA usage falls below this are reset to encoder outputs of the batch."""
    kmeans_init: bool = False
    """Initialise the codebook by k-means on the first batch."""

    def __post_init__(self) -> None:
        if self.architecture not in ("conv", "transformer"):
            raise ValueError(f"architecture must be 'conv' or 'transformer', got {self.architecture!r}")
        if self.num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {self.num_quantizers}")

    @property
    def frames_per_code(self) -> int:
        return 2**self.down_sampling


PRESETS: dict[str, dict] = {
    "t2m-gpt": {},
    "momask": {"num_quantizers": 6, "quantize_dropout": 0.2},
    "m2dm": {"architecture": "transformer", "depth": 4},
    "small": {"width": 128, "depth": 2, "codebook_size": 256, "code_dim": 128},
    "tiny": {"width": 32, "depth": 1, "codebook_size": 64, "code_dim": 32, "num_heads": 2},
}


def motion_vq_config(preset: str = "t2m-gpt", **overrides) -> MotionVQConfig:
    """The preset's config with ``overrides`` applied (unknown names raise)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown motion VQ preset {preset!r}; choose from {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(MotionVQConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown MotionVQConfig fields {sorted(unknown)}")
    return MotionVQConfig(**{**PRESETS[preset], **overrides})
