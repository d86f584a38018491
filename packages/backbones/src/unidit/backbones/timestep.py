"""Sinusoidal timestep embedding followed by an MLP (DiT).

Peebles & Xie, "Scalable Diffusion Models with Transformers", 2023
(arXiv:2212.09748), §3.2 "Conditioning inputs": the scalar timestep is
embedded with the Transformer sinusoids (Vaswani et al., 2017, §3.5) and a
two-layer SiLU MLP. Here the timestep may differ per token (LTX-Video, HaCohen
et al., 2024, arXiv:2501.00103: conditioning frames are tokens held at t=0),
so the embedding keeps a token axis.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoids of real-valued ``t`` (any shape) -> ``(*t.shape, dim)``.

    ``[cos(t * f_i), sin(t * f_i)]`` with ``f_i = max_period ** (-i / (dim/2))``,
    computed in float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[..., None] * freqs  # (*t, dim/2)
    emb = torch.cat([angles.cos(), angles.sin()], dim=-1)  # (*t, 2 * (dim/2))
    if dim % 2:
        emb = F.pad(emb, (0, 1))  # (*t, dim)
    return emb


class TimestepEmbedder(nn.Module):
    """Timesteps in [0, 1] -> conditioning vectors.

    ``t`` of shape ``(B,)`` gives ``(B, 1, dim)`` (one vector per sample,
    broadcast over tokens); ``(B, L)`` gives ``(B, L, dim)`` (one per token).
    ``t`` is scaled by 1000 before the sinusoids, matching the frequency range
    DiT was designed for (integer steps 0..999).

    Args:
        dim: output width (the model width).
        freq_dim: width of the sinusoidal features.
        scale: multiplier applied to ``t`` before the sinusoids.
    """

    def __init__(self, dim: int, freq_dim: int = 256, scale: float = 1000.0) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) weights and zero biases, as DiT's ``initialize_weights``."""
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, t: Tensor) -> Tensor:
        if t.ndim == 1:
            t = rearrange(t, "b -> b 1")  # (B, 1)
        elif t.ndim != 2:
            raise ValueError(f"t must be (B,) or (B, L), got shape {tuple(t.shape)}")
        freq = sinusoidal_embedding(t * self.scale, self.freq_dim)  # (B, L|1, freq_dim)
        return self.mlp(freq)  # (B, L|1, dim)
