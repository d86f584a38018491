"""Adaptive layer-norm modulation with zero initialisation (adaLN-Zero).

Peebles & Xie, "Scalable Diffusion Models with Transformers", 2023
(arXiv:2212.09748), §3.2: a linear map of the conditioning vector regresses
per-channel shift, scale and gate for each sub-layer; initialising it to zero
makes every block the identity at the start of training. The conditioning
here may be per token, ``(B, L, C)``, so every regressed tensor keeps its
token axis (LTX-Video's per-token timesteps). SiLU of the conditioning is
shared by every block, so the model applies it once per forward.
"""

from torch import Tensor, nn
from unidit.backbones.modulation import modulate
from unidit.backbones.norms import RMSNorm
from unidit.backbones.timestep import TimestepEmbedder


class ZeroLinear(nn.Linear):
    """A linear layer that starts (and is re-initialised) at exact zero."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class AdaLN(nn.Module):
    """``SiLU(c)`` ``(B, L|1, C)`` -> ``chunks`` tensors ``(B, L|1, dim)``, zero at init.

    In a varlen row (:mod:`unidit.backbones.varlen`) the conditioning is per
    sample, ``(N, 1, C)``: it is regressed per sample, so the linear never runs
    per token, and :mod:`unidit.backbones.modulation` spreads the results onto
    the tokens.
    """

    def __init__(self, dim: int, chunks: int, cond_dim: int | None = None) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = ZeroLinear(cond_dim or dim, chunks * dim)

    def forward(self, c_act: Tensor) -> tuple[Tensor, ...]:
        return self.linear(c_act).chunk(self.chunks, dim=-1)  # chunks x (B, L|1, D)


class FinalNorm(nn.Module):
    """The last layer's adaLN-modulated RMSNorm (DiT's ``FinalLayer`` minus its linear).

    The task's head projects the result; shift and scale come from the same
    (per-token) conditioning as the blocks.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, eps, elementwise_affine=False)
        self.adaln = AdaLN(dim, 2)

    def forward(self, x: Tensor, c_act: Tensor, index: Tensor | None = None) -> Tensor:
        shift, scale = self.adaln(c_act)  # (B|N, L|1, D)
        return modulate(self.norm(x), shift, scale, index)  # (B, L, D)


def dit_initialize(model: nn.Module) -> None:
    """DiT's ``initialize_weights``: Xavier-uniform linears with zero biases,
    N(0, 0.02) timestep MLP, zero adaLN (every :class:`ZeroLinear`)."""
    for module in model.modules():
        if isinstance(module, ZeroLinear):
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, TimestepEmbedder):
            module.reset_parameters()
