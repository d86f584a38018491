"""Timestep densities and schedules of rectified flow (Esser et al. 2024, SD3 §3.1, §5.3.2).

Pure functions shared by the training objective (:mod:`unidit.backbones.rectified_flow`)
and the ODE samplers (:mod:`unidit.backbones.samplers`): the logit-normal
training density, the time shift and its resolution-dependent factor, and the
sampling schedule from t = 1 (noise) to t = 0 (data).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def logit_normal_t(
    batch: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sample ``t = sigmoid(u)``, ``u ~ N(mean, std²)`` (SD3 §3.1). Returns ``(B,)`` float32."""
    draw_device = generator.device if generator is not None else device
    u = torch.randn(batch, generator=generator, device=draw_device)  # (B,)
    return torch.sigmoid(mean + std * u).to(device if device is not None else u.device)  # (B,)


def shift_time(t: Tensor, shift: float | Tensor) -> Tensor:
    """Time shift ``t' = s·t / (1 + (s - 1)·t)`` (SD3 §5.3.2); ``s > 1`` spends more time near noise."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def resolution_shift(seq_len: float, base_seq_len: int = 256, base_shift: float = 1.0) -> float:
    """Shift for a sequence of ``seq_len`` tokens: ``base_shift · sqrt(seq_len / base_seq_len)`` (SD3 §5.3.2).

    SD3 derives the factor ``sqrt(m / n)`` from matching the signal-to-noise
    ratio of a constant image at two resolutions with ``m`` and ``n`` pixels.
    """
    return float(base_shift * math.sqrt(float(seq_len) / float(base_seq_len)))


def timestep_schedule(steps: int, shift: float = 1.0) -> Tensor:
    """``steps + 1`` times from 1 to 0, uniform then time-shifted (SD3 §5.3.2). float32."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1)  # (steps + 1,)
    t = shift_time(t, shift)
    t[0], t[-1] = 1.0, 0.0  # exact ends whatever the rounding of the shift
    return t
