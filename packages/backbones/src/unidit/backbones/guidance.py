"""Classifier-free guidance with rescale.

Classifier-free guidance (Ho & Salimans 2022, §3.2, Eq. 6) extrapolates from
the unconditional towards the conditional prediction::

    p = u + w · (c - u)

Large ``w`` inflates the prediction's magnitude and over-saturates samples.
Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are
Flawed", §3.4, Alg. 2) rescale the guided prediction back to the standard
deviation of the conditional one and blend with factor ``phi``::

    p_r = p · std(c) / std(p)
    out = phi · p_r + (1 - phi) · p

EzAudio (Hai et al. 2024, §3.4) applies this rescale to text-to-audio
diffusion transformers, which is where unidit's ``t2a`` task takes its
default ``phi`` from. Standard deviations are per sample, over every
non-batch dimension; given a token mask, over the generated tokens only, so
padding slots and held (in-painting) tokens of a mixed batch do not skew them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

ModelFn = Callable[[Tensor, Tensor], Tensor]


def _per_sample_std(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Standard deviation of each sample of ``x`` ``(B, L, ...)``; with ``mask`` ``(B, L)``, over its True tokens."""
    dims = tuple(range(1, x.dim()))
    if mask is None:
        return x.std(dim=dims, keepdim=True)  # (B, 1, ...)
    weight = mask.reshape(mask.shape + (1,) * (x.dim() - mask.dim())).to(x.dtype).expand_as(x)  # (B, L, ...)
    count = weight.sum(dim=dims, keepdim=True)  # (B, 1, ...)
    mean = (x * weight).sum(dim=dims, keepdim=True) / count.clamp(min=1)
    variance = ((x - mean).square() * weight).sum(dim=dims, keepdim=True) / (count - 1).clamp(min=1)
    return variance.sqrt()  # (B, 1, ...), unbiased like Tensor.std


def cfg_combine(
    v_cond: Tensor, v_uncond: Tensor, scale: float, rescale_phi: float = 0.0, mask: Tensor | None = None
) -> Tensor:
    """Guided prediction from conditional and unconditional ones of the same shape ``(B, L, ...)``.

    ``scale == 1`` returns ``v_cond`` unchanged; ``rescale_phi == 0`` is plain CFG. ``mask`` ``(B, L)``
    (True = a generated token) limits the rescale's standard deviations to those tokens.
    """
    if v_cond.shape != v_uncond.shape:
        raise ValueError(f"shapes differ: {tuple(v_cond.shape)} vs {tuple(v_uncond.shape)}")
    if scale == 1.0:
        return v_cond
    guided = v_uncond + scale * (v_cond - v_uncond)  # (B, ...)
    if rescale_phi == 0.0:
        return guided
    ratio = _per_sample_std(v_cond, mask) / _per_sample_std(guided, mask).clamp(min=1e-12)  # (B, 1, ...)
    rescaled = guided * ratio  # (B, ...)
    return rescale_phi * rescaled + (1.0 - rescale_phi) * guided


class GuidedModel:
    """Wrap a ``model_fn`` run on a doubled batch ``[cond; uncond]`` into a guided ``model_fn``.

    The wrapped function receives ``x`` and ``t`` repeated twice along the batch
    (``(2B, ...)``) and is evaluated once; its first half must be the
    conditional prediction and its second half the unconditional one. The
    caller prepares a context of matching ``2B`` rows (e.g. captions then
    null captions) inside ``model_fn``. ``mask`` ``(B, L)`` marks the generated
    tokens for the rescale (see :func:`cfg_combine`).
    """

    def __init__(self, model_fn: ModelFn, scale: float, rescale_phi: float = 0.0, mask: Tensor | None = None) -> None:
        self.model_fn = model_fn
        self.scale = scale
        self.rescale_phi = rescale_phi
        self.mask = mask

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        x2 = torch.cat([x, x], dim=0)  # (2B, L, C)
        t2 = torch.cat([t, t], dim=0)  # (2B, L)
        out = self.model_fn(x2, t2)  # (2B, L, C)
        v_cond, v_uncond = out.chunk(2, dim=0)  # each (B, L, C)
        return cfg_combine(v_cond, v_uncond, self.scale, self.rescale_phi, self.mask)  # (B, L, C)
