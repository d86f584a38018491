"""SwiGLU feed-forward network.

Shazeer, "GLU Variants Improve Transformer", 2020 (arXiv:2002.05202), as used
by LLaMA and by Lumina-T2X's Flag-DiT: ``W3(silu(W1 x) * W2 x)``. The hidden
width is ``2/3 * mlp_ratio * dim`` (so the three matrices cost about as much
as a plain ``mlp_ratio`` MLP), rounded up to a multiple of ``multiple_of``.
"""

import torch.nn.functional as F
from torch import Tensor, nn


def swiglu_hidden_dim(dim: int, mlp_ratio: float, multiple_of: int = 64) -> int:
    """``2/3 * mlp_ratio * dim`` rounded up to a multiple of ``multiple_of``."""
    hidden = int(2 * mlp_ratio * dim / 3)
    return multiple_of * -(-hidden // multiple_of)


class SwiGLU(nn.Module):
    """Gated SiLU MLP ``(B, L, dim) -> (B, L, dim)`` without biases.

    Args:
        dim: model width.
        mlp_ratio: nominal expansion of a plain two-matrix MLP.
        multiple_of: hidden width rounding (hardware friendly sizes).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, multiple_of: int = 64) -> None:
        super().__init__()
        self.hidden_dim = swiglu_hidden_dim(dim, mlp_ratio, multiple_of)
        self.w12 = nn.Linear(dim, 2 * self.hidden_dim, bias=False)  # gate and value in one matmul
        self.w3 = nn.Linear(self.hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)  # (B, L, hidden) each
        return self.w3(F.silu(gate) * value)  # (B, L, dim)
