"""RMSNorm.

* RMSNorm: Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019
  (arXiv:1910.07467) -- rescale by the root mean square, no centring. Used for
  the pre-norms, the QK-norm and the final norm as in Lumina-T2X / Lumina-Next.
  On CPU it runs through :class:`_RMSNormCPU`, a hand-written backward: torch
  2.11 has a fused RMSNorm kernel on CUDA only, and the CPU decomposition
  records six elementwise ops for autograd.

The adaLN modulation paired with it lives in :mod:`unidit.backbones.modulation`.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _RMSNormCPU(torch.autograd.Function):
    """RMSNorm over the last axis with an analytic backward (2x faster than ``F.rms_norm`` on CPU).

    With ``y = x · r``, ``r = (mean(x²) + eps)^-½`` and ``g = dout · weight``:
    ``dx = r · (g − y · mean(g · y))``, ``dweight = Σ dout · y``. Forward saves ``y`` and ``r``
    only; measured at (4, 1056, 384), forward + backward take 3.2 ms against 6.2 ms.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
        dim = x.shape[-1]
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(dim).add_(eps).rsqrt_()  # (..., 1)
        y = x * rstd  # (..., D)
        ctx.save_for_backward(y, rstd, weight)
        return y if weight is None else y * weight

    @staticmethod
    def backward(ctx, dout: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        y, rstd, weight = ctx.saved_tensors
        g = dout if weight is None else dout * weight  # (..., D)
        mean_gy = torch.linalg.vecdot(g, y, dim=-1).unsqueeze(-1).div_(y.shape[-1])  # (..., 1)
        dx = torch.addcmul(g, y, mean_gy, value=-1).mul_(rstd) if ctx.needs_input_grad[0] else None
        dweight = None
        if weight is not None and ctx.needs_input_grad[1]:
            dweight = (dout * y).reshape(-1, y.shape[-1]).sum(0)  # (D,)
        return dx, dweight, None


def rms_norm(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
    """RMSNorm over the last axis: :class:`_RMSNormCPU` on CPU in eager mode, else ``F.rms_norm``.

    (CUDA has a fused kernel; under ``torch.compile`` Inductor fuses the decomposition itself.)
    """
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        return _RMSNormCPU.apply(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis, computed in float32.

    Args:
        dim: size of the normalised (last) axis.
        eps: added to the mean square before the square root.
        elementwise_affine: learn a per-channel gain (initialised to one).
            Off for norms that adaLN modulates anyway (DiT §3.2).
    """

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        # float32 statistics even under bf16 autocast; the result keeps x's dtype
        weight = None if self.weight is None else self.weight.float()
        y = rms_norm(x.float(), weight, self.eps)  # (..., dim)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, elementwise_affine={self.weight is not None}"
