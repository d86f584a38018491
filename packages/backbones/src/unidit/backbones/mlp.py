"""SwiGLU feed-forward network.

Shazeer, "GLU Variants Improve Transformer", 2020 (arXiv:2002.05202), as used
by LLaMA and by Lumina-T2X's Flag-DiT: ``W3(silu(W1 x) * W2 x)``. The hidden
width is ``2/3 * mlp_ratio * dim`` (so the three matrices cost about as much
as a plain ``mlp_ratio`` MLP), rounded up to a multiple of ``multiple_of``.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SwiGLUGateCPU(torch.autograd.Function):
    """``silu(gate) * value`` of a fused ``(..., 2·hidden)`` projection, gradients written into one buffer.

    Through ``chunk`` autograd builds the two halves' gradients apart and concatenates them (a full
    copy of the ``2·hidden`` wide tensor per block, the largest ``aten::cat`` of a CPU training step);
    here they are computed straight into the halves of one buffer. Same saved tensors as autograd's.
    """

    @staticmethod
    def forward(ctx, fused: Tensor) -> Tensor:
        gate, value = fused.chunk(2, dim=-1)  # (..., hidden) each
        activated = F.silu(gate)  # (..., hidden)
        ctx.save_for_backward(gate, value, activated)
        return activated * value  # (..., hidden)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        gate, value, activated = ctx.saved_tensors
        fused_grad = grad.new_empty(*grad.shape[:-1], 2 * grad.shape[-1])  # (..., 2·hidden)
        gate_grad, value_grad = fused_grad.chunk(2, dim=-1)
        torch.mul(grad, activated, out=value_grad)
        torch.ops.aten.silu_backward.grad_input(grad * value, gate, grad_input=gate_grad)
        return fused_grad


def swiglu_gate(fused: Tensor) -> Tensor:
    """``silu(gate) * value`` for ``fused = [gate, value]`` ``(..., 2·hidden)`` -> ``(..., hidden)``.

    The hand-written backward runs on the CPU in eager mode (as RMSNorm's does); CUDA and
    ``torch.compile`` keep the plain form.
    """
    if fused.device.type == "cpu" and not torch.compiler.is_compiling() and torch.is_grad_enabled():
        return _SwiGLUGateCPU.apply(fused)
    gate, value = fused.chunk(2, dim=-1)  # (..., hidden) each
    return F.silu(gate) * value


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
        return self.w3(swiglu_gate(self.w12(x)))  # (B, L, dim)
