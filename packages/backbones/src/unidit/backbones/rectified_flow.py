"""Rectified flow objective (Liu et al. 2022; Esser et al. 2024, SD3 §2-3).

Convention used everywhere in unidit::

    x_t = (1 - t) · x0 + t · ε        t = 0 clean data, t = 1 pure noise
    v   = ε - x0                       the velocity the network predicts

Training draws t from a logit-normal distribution (SD3 §3.1, "lognorm(m, s)")
and optionally applies the resolution-dependent time shift of SD3 §5.3.2,
which moves t towards the noise end for longer sequences. Every token carries
its own t: conditioning tokens (an image for image-to-video, the known span in
in-painting, the observed voxels in completion) are held nearly clean with
``t_token = min(t, 1 - strength)``, as in LTX-Video (HaCohen et al. 2024, §3.4).

The objective wraps any ``model_fn(x_t (B, L, C), t) -> v (B, L, C)``, where
``t`` is ``(B,)`` when no token is held (one time per sample) and ``(B, L)``
with a :class:`Conditioning`; the backbone never sees noise or schedules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from unidit.backbones.held_tokens import Conditioning
from unidit.backbones.samplers import SAMPLERS
from unidit.backbones.time_schedule import logit_normal_t, resolution_shift, shift_time, timestep_schedule

ModelFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Conditioning", "RectifiedFlow", "logit_normal_t", "resolution_shift", "shift_time"]


class RectifiedFlow:
    """Rectified-flow loss and ODE sampling around any velocity network (SD3 §2-3).

    Args:
        t_mean, t_std: logit-normal parameters of the training time (SD3 uses 0, 1).
        shift: time shift applied to training and sampling times (1 = none).
        resolution_dependent_shift: scale ``shift`` by ``sqrt(seq_len / base_seq_len)``,
            where ``seq_len`` counts each sample's valid tokens (SD3 §5.3.2).
        base_seq_len: sequence length at which ``shift`` applies unscaled.
    """

    def __init__(
        self,
        t_mean: float = 0.0,
        t_std: float = 1.0,
        shift: float = 1.0,
        resolution_dependent_shift: bool = False,
        base_seq_len: int = 256,
    ) -> None:
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        self.t_mean = t_mean
        self.t_std = t_std
        self.shift = shift
        self.resolution_dependent_shift = resolution_dependent_shift
        self.base_seq_len = base_seq_len

    def _shift_for(self, seq_len: Tensor | float) -> Tensor | float:
        if not self.resolution_dependent_shift:
            return self.shift
        if isinstance(seq_len, Tensor):
            return self.shift * torch.sqrt(seq_len.float() / self.base_seq_len)  # (B,)
        return resolution_shift(seq_len, self.base_seq_len, self.shift)

    def sample_t(
        self, x0: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Training times ``(B,)``: logit-normal, then (resolution-)shifted."""
        batch, length = x0.shape[:2]
        t = logit_normal_t(batch, self.t_mean, self.t_std, generator, device=x0.device)  # (B,)
        seq_len = mask.sum(dim=1).clamp(min=1) if mask is not None else torch.full_like(t, length)
        return shift_time(t, self._shift_for(seq_len))  # (B,)

    def loss(
        self,
        model_fn: ModelFn,
        x0: Tensor,
        mask: Tensor | None = None,
        cond: Conditioning | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Velocity-matching loss, a scalar.

        ``x0`` is ``(B, L, C)``; ``mask`` ``(B, L)`` marks the tokens that count
        (data, non-padding; None = all). Conditioning tokens are built with their
        own (held) time and excluded from the loss. The squared error is averaged
        over channels, then over every counted token of the batch.
        """
        batch, length = x0.shape[:2]
        t = self.sample_t(x0, mask, generator)  # (B,)
        noise_device = generator.device if generator is not None else x0.device
        eps = torch.randn(x0.shape, generator=generator, device=noise_device, dtype=x0.dtype)
        eps = eps.to(x0.device)  # (B, L, C)
        if cond is not None:
            t_tok = cond.token_t(t)  # (B, L): held tokens carry their own time
            x0 = torch.where(cond.mask[..., None], cond.x.to(x0.dtype), x0)  # (B, L, C)
            tt = t_tok[..., None].to(x0.dtype)  # (B, L, 1)
        else:
            t_tok = t  # (B,): every token of a sample shares its time, so the network may run adaLN per sample
            tt = t[:, None, None].to(x0.dtype)  # (B, 1, 1)
        x_t = (1.0 - tt) * x0 + tt * eps  # (B, L, C)
        target = eps - x0  # (B, L, C)
        pred = model_fn(x_t, t_tok)  # (B, L, C)
        err = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, L)

        weight = torch.ones(batch, length, dtype=torch.bool, device=x0.device)
        if mask is not None:
            weight = weight & mask.bool()
        if cond is not None:
            weight = weight & ~cond.mask
        # `where`, not a product: whatever the model writes outside the counted
        # tokens (even inf / nan) cannot reach the loss.
        err = torch.where(weight, err, torch.zeros_like(err))  # (B, L)
        return err.sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        noise: Tensor,
        steps: int = 50,
        sampler: str = "euler",
        cond: Conditioning | None = None,
        shift: float | None = None,
        callback: Callable[[int, Tensor, Tensor], None] | None = None,
        mask: Tensor | None = None,
        sway: float | None = None,
    ) -> Tensor:
        """Integrate the ODE from ``noise`` (t = 1) to data (t = 0); returns ``x0`` ``(B, L, C)``.

        ``shift`` overrides the time shift; by default the training shift is
        used, scaled by resolution (from the longest valid length in ``mask``,
        or ``L``) when ``resolution_dependent_shift`` is set. ``sway`` spaces the
        steps by F5-TTS's sway sampling (:func:`~unidit.backbones.time_schedule.sway_time`).
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {sorted(SAMPLERS)}")
        if shift is None:
            seq_len = int(mask.sum(dim=1).max()) if mask is not None else noise.shape[1]
            shift = float(self._shift_for(seq_len))
        timesteps = timestep_schedule(steps, shift, sway).to(noise.device)  # (steps + 1,)
        return SAMPLERS[sampler](model_fn, noise, timesteps, cond=cond, callback=callback)
