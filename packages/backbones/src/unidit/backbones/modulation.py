"""adaLN modulation and gated residuals (DiT, Peebles & Xie 2023, §3.2 "adaLN-Zero").

Every block modulates its normalised input, ``x · (1 + scale) + shift``, and
gates what it adds to the residual stream, ``x + gate · update``. ``shift``,
``scale`` and ``gate`` are ``(B, 1, D)`` for one timestep per sample or
``(B, L, D)`` for one timestep per token. Each is a multiply and then an add
into the product in place (one allocation less). Not one ``addcmul``: that
rounds differently, and the tasks' reported results were trained with this
arithmetic, which stays bit-identical.

In a varlen row (:mod:`unidit.backbones.varlen`) they are per sample,
``(N, 1, D)``, and ``index`` ``(T,)`` names each token's sample; with per-token
times they are per (sample, time) pair, ``(U, 1, D)``
(:func:`~unidit.backbones.conditioning.condition_rows`), and ``index``
``(B·L,)`` names each token's pair. Gathering them onto the tokens would keep
three ``(B, L, D)`` tensors per sub-layer alive for the backward;
:class:`_SegmentModulate` and :class:`_SegmentGatedResidual` gather them only
transiently and reduce their gradients back per row with ``index_add``.
"""

import torch
from torch import Tensor


def _per_token(per_row: Tensor, index: Tensor, like: Tensor) -> Tensor:
    """``(N, 1, D)`` -> ``like``'s shape ``(B, L, D)`` / ``(1, T, D)``: each token takes its row."""
    return per_row[:, 0].index_select(0, index).view(like.shape)


def _per_sample_sum(per_token: Tensor, index: Tensor, samples: int, dtype: torch.dtype) -> Tensor:
    """``(B, L, D)`` / ``(1, T, D)`` -> ``(N, 1, D)``: the sum over each row's tokens."""
    flat = per_token.reshape(-1, per_token.shape[-1])  # (B·L, D)
    total = per_token.new_zeros(samples, per_token.shape[-1]).index_add_(0, index, flat)  # (N, D)
    return total[:, None].to(dtype)


class _SegmentModulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, shift: Tensor, scale: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(x, scale, index)
        return torch.addcmul(_per_token(shift, index, x), x, _per_token(1 + scale, index, x))  # (B, L, D)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, index = ctx.saved_tensors
        dx = dshift = dscale = None
        if ctx.needs_input_grad[0]:
            dx = (grad * _per_token(1 + scale, index, grad)).to(x.dtype)  # (B, L, D)
        if ctx.needs_input_grad[1]:
            dshift = _per_sample_sum(grad, index, scale.shape[0], scale.dtype)  # (N, 1, D)
        if ctx.needs_input_grad[2]:
            dscale = _per_sample_sum(grad * x, index, scale.shape[0], scale.dtype)  # (N, 1, D)
        return dx, dshift, dscale, None


class _SegmentGatedResidual(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, gate: Tensor, update: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(gate, update, index)
        ctx.x_dtype = x.dtype
        return torch.addcmul(x, _per_token(gate, index, update), update)  # (B, L, D)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        gate, update, index = ctx.saved_tensors
        dx = grad.to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
        dgate = _per_sample_sum(grad * update, index, gate.shape[0], gate.dtype) if ctx.needs_input_grad[1] else None
        dupdate = (grad * _per_token(gate, index, grad)).to(update.dtype) if ctx.needs_input_grad[2] else None
        return dx, dgate, dupdate, None


def modulate(x: Tensor, shift: Tensor, scale: Tensor, index: Tensor | None = None) -> Tensor:
    """``x · (1 + scale) + shift`` for ``x`` ``(B, L, D)``; per-row terms ``(N, 1, D)`` with ``index`` ``(B·L,)``."""
    if index is None:  # the product is a fresh tensor that autograd does not keep: add in place
        return (x * (1 + scale)).add_(shift)  # (B, L, D)
    return _SegmentModulate.apply(x, shift, scale, index)  # (1, T, D)


def gated_residual(x: Tensor, gate: Tensor, update: Tensor, index: Tensor | None = None) -> Tensor:
    """``x + gate · update`` for ``x``, ``update`` ``(B, L, D)``; a per-row ``gate`` ``(N, 1, D)`` with ``index``."""
    if index is None:
        gated = gate * update  # (B, L, D), fresh and not kept by autograd
        return gated.add_(x) if gated.dtype == x.dtype else x + gated  # same sum either way (a + b = b + a)
    return _SegmentGatedResidual.apply(x, gate, update, index)  # (1, T, D)
