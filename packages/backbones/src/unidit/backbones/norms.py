"""RMSNorm and the adaLN modulation it is paired with.

* RMSNorm: Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019
  (arXiv:1910.07467) -- rescale by the root mean square, no centring. Used for
  the pre-norms, the QK-norm and the final norm as in Lumina-T2X / Lumina-Next.
* ``modulate``: the adaptive layer-norm shift/scale of DiT (Peebles & Xie,
  "Scalable Diffusion Models with Transformers", 2023, §3.2 "adaLN-Zero").
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        y = F.rms_norm(x.float(), (self.dim,), weight, self.eps)  # (..., dim)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, elementwise_affine={self.weight is not None}"


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` (DiT §3.2).

    ``shift`` / ``scale`` are ``(B, 1, D)`` for one timestep per sample or
    ``(B, L, D)`` for one timestep per token; ``x`` is ``(B, L, D)``.
    """
    return x * (1 + scale) + shift  # (B, L, D)
