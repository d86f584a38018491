"""Backbone hyper-parameters and named size presets.

One dataclass describes both architectures (Flag-DiT of Lumina-T2X and the
MMDiT of Stable Diffusion 3); ``build_backbone`` picks the class from
``arch``. The config is what ``save_pretrained`` writes to ``config.json``;
JSON turns tuples into lists, so ``__post_init__`` turns them back.

Presets follow the DiT naming habit (Peebles & Xie 2023, Table 1: S/B/L
widths and depths) plus a ``tiny`` size for tests and CPU demos.
"""

import dataclasses
from dataclasses import dataclass

from unidit.backbones.rope import default_rope_axes

ARCHS = ("flag_dit", "mmdit")


@dataclass
class BackboneConfig:
    """Hyper-parameters of a diffusion-transformer backbone."""

    arch: str = "flag_dit"
    """'flag_dit' (Lumina-T2X, gated cross-attention to text) or 'mmdit' (SD3, joint attention)."""
    dim: int = 256
    """Model width D (tokens enter and leave the backbone with this width)."""
    depth: int = 6
    """Number of transformer blocks."""
    num_heads: int = 8
    """Attention heads; dim must be divisible by it and head_dim even."""
    mlp_ratio: float = 4.0
    """Nominal MLP expansion (SwiGLU uses 2/3 of it per matrix)."""
    context_dim: int = 384
    """Width of the text-encoder hidden states given as context."""
    pooled_context: bool = True
    """Add a projection of the masked-mean context to the timestep embedding."""
    rope_theta: float = 10000.0
    """RoPE frequency base."""
    rope_axes: tuple[int, int, int] | None = None
    """Channels of head_dim rotated by (frame, row, col); each even, summing to head_dim. None = even split."""
    qk_norm: bool = True
    """RMS-normalise queries and keys per head before attention."""
    num_modalities: int = 0
    """> 0 adds a learned modality embedding (indexed by `modality`) to the timestep embedding."""
    window_size: int = 0
    """Cubic window edge, in positions per axis, for the window-attention blocks (DiT-3D)."""
    window_blocks: tuple[int, ...] = ()
    """Indices of blocks whose self-attention stays within windows."""
    gradient_checkpointing: bool = False
    """Recompute each block in the backward pass while training."""
    norm_eps: float = 1e-6
    """Epsilon of every RMSNorm."""
    cross_gate_init: float = 0.0
    """Flag-DiT: initial value of every cross-attention gate (the head output is scaled by its tanh).
    0 is Lumina-T2X's zero init, right for a pretrained context (text); a context encoder trained from
    scratch with the task (the captioner's image encoder) needs an open gate, or neither learns."""

    def __post_init__(self) -> None:
        if isinstance(self.rope_axes, list):
            self.rope_axes = tuple(self.rope_axes)
        if isinstance(self.window_blocks, list):
            self.window_blocks = tuple(self.window_blocks)
        self._validate()

    def _validate(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch: unknown architecture {self.arch!r}; choose one of {ARCHS}")
        for name in ("dim", "depth", "num_heads", "context_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim: {self.dim} is not divisible by num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"num_heads: head_dim = dim / num_heads = {self.head_dim} must be even for RoPE")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio: must be positive, got {self.mlp_ratio}")
        if self.rope_theta <= 0:
            raise ValueError(f"rope_theta: must be positive, got {self.rope_theta}")
        if self.norm_eps <= 0:
            raise ValueError(f"norm_eps: must be positive, got {self.norm_eps}")
        if self.rope_axes is not None:
            axes = self.rope_axes
            if len(axes) != 3 or any(a < 0 or a % 2 for a in axes) or sum(axes) != self.head_dim:
                raise ValueError(
                    f"rope_axes: need three even, non-negative sizes summing to head_dim={self.head_dim}, got {axes}"
                )
        if self.num_modalities < 0:
            raise ValueError(f"num_modalities: must be >= 0, got {self.num_modalities}")
        if self.window_size < 0:
            raise ValueError(f"window_size: must be >= 0, got {self.window_size}")
        if self.window_blocks and self.window_size == 0:
            raise ValueError("window_size: must be > 0 when window_blocks is not empty")
        bad = [b for b in self.window_blocks if not 0 <= b < self.depth]
        if bad:
            raise ValueError(f"window_blocks: indices {bad} outside [0, depth={self.depth})")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def resolved_rope_axes(self) -> tuple[int, int, int]:
        """``rope_axes`` or the default even split of head_dim."""
        return self.rope_axes if self.rope_axes is not None else default_rope_axes(self.head_dim)


PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"dim": 64, "depth": 2, "num_heads": 4},
    "small": {"dim": 256, "depth": 6, "num_heads": 8},
    "base": {"dim": 768, "depth": 12, "num_heads": 12},
    "large": {"dim": 1024, "depth": 24, "num_heads": 16},
}


def backbone_config(preset: str, **overrides) -> BackboneConfig:
    """A preset's config with any field overridden, e.g. ``backbone_config("tiny", arch="mmdit")``."""
    if preset not in PRESETS:
        raise ValueError(f"preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(BackboneConfig)}
    if unknown:
        raise ValueError(f"unknown BackboneConfig field(s): {sorted(unknown)}")
    return BackboneConfig(**{**PRESETS[preset], **overrides})
