"""The rectified-flow loss split in two, so several tasks can share one network call.

:meth:`unidit.backbones.rectified_flow.RectifiedFlow.loss` draws the time and
noise, calls the network and reduces the error in one go. A joint step needs
the noisy inputs of every task first, then one backbone call over all of them
(one varlen row), then each task's error: :func:`draw_targets` is the first
half and :func:`sample_errors` (or :func:`masked_error`) the second, with the same draws, the same
convention (``x_t = (1 − t)·x0 + t·ε``, target ``ε − x0``, SD3) and the same
reduction as ``RectifiedFlow.loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from unidit.backbones.rectified_flow import Conditioning, RectifiedFlow


@dataclass
class FlowTargets:
    """One task's noisy input, its times, its velocity target and the tokens that count."""

    x_t: Tensor  # (B, L, C)
    t: Tensor  # (B,) or (B, L) with held tokens
    target: Tensor  # (B, L, C)
    weight: Tensor  # (B, L) bool


def draw_targets(flow: RectifiedFlow, x0: Tensor, mask: Tensor | None = None,
                 cond: Conditioning | None = None, t: Tensor | None = None, eps: Tensor | None = None
                 ) -> FlowTargets:
    """Draw t (logit-normal, shifted) and ε for ``x0`` (B, L, C) exactly as ``RectifiedFlow.loss`` does.

    ``t`` (B,) and ``eps`` (B, L, C), when given, are used instead of drawing them.
    """
    batch, length = x0.shape[:2]
    if t is None:
        t = flow.sample_t(x0, mask, None)  # (B,)
    if eps is None:
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)  # (B, L, C)
    if cond is not None:
        t_tok = cond.token_t(t)  # (B, L)
        x0 = torch.where(cond.mask[..., None], cond.x.to(x0.dtype), x0)  # (B, L, C)
        tt = t_tok[..., None].to(x0.dtype)  # (B, L, 1)
    else:
        t_tok = t  # (B,)
        tt = t[:, None, None].to(x0.dtype)  # (B, 1, 1)
    weight = torch.ones(batch, length, dtype=torch.bool, device=x0.device)
    if mask is not None:
        weight = weight & mask.bool()
    if cond is not None:
        weight = weight & ~cond.mask
    return FlowTargets((1.0 - tt) * x0 + tt * eps, t_tok, eps - x0, weight)


def masked_error(pred: Tensor, targets: FlowTargets) -> Tensor:
    """Mean squared velocity error over the counted tokens (channels first), a scalar."""
    err = _token_error(pred, targets)  # (B, L)
    return err.sum() / targets.weight.sum().clamp(min=1)


def sample_errors(pred: Tensor, targets: FlowTargets) -> Tensor:
    """``(B,)`` each sample's mean squared velocity error over its own counted tokens.

    The mean of these over a batch does not depend on how the batch is split:
    averaged over DDP ranks holding equal numbers of samples, it is the mean over
    the global batch, which a token-weighted mean is not when lengths differ.
    """
    err = _token_error(pred, targets)  # (B, L)
    return err.sum(dim=1) / targets.weight.sum(dim=1).clamp(min=1)


def _token_error(pred: Tensor, targets: FlowTargets) -> Tensor:
    err = (pred.float() - targets.target.float()).pow(2).mean(dim=-1)  # (B, L)
    return torch.where(targets.weight, err, torch.zeros_like(err))  # nothing outside the counted tokens leaks in
