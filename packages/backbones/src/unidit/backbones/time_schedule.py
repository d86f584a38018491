"""Timestep densities and schedules of rectified flow (Esser et al. 2024, SD3 §3.1, §5.3.2).

Pure functions shared by the training objective (:mod:`unidit.backbones.rectified_flow`)
and the ODE samplers (:mod:`unidit.backbones.samplers`): the logit-normal
training density, the time shift and its resolution-dependent factor, the
sampling schedule from t = 1 (noise) to t = 0 (data), and F5-TTS's sway
sampling of that schedule.
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


SWAY_RANGE = (-1.0, 1.0 / (math.pi / 2.0 - 1.0))  # coefficients whose sway schedule is monotonic


def sway_time(u: Tensor, coefficient: float) -> Tensor:
    """F5-TTS sway sampling (Chen et al. 2024, §3.3, Eq. 7) in unidit's time direction.

    F5-TTS runs its flow from noise at ``t = 0`` to data at ``t = 1`` and sways a
    uniform ``u`` in [0, 1] to ``t_f5 = u + s·(cos(πu/2) − 1 + u)``; ``s < 0``
    packs the steps near noise (``s = −1`` gives ``t_f5 = 1 − cos(πu/2)``). Here
    ``t = 0`` is data and ``t = 1`` noise, so the same schedule is
    ``t = 1 − t_f5``: returns ``1 − sway(u)``, going from 1 (``u = 0``) to 0 (``u = 1``).
    It decreases monotonically for ``s`` in :data:`SWAY_RANGE` (its derivative
    ``1 + s·(1 − (π/2)·sin(πu/2))`` stays >= 0 there).
    """
    low, high = SWAY_RANGE
    if not low <= coefficient < high:
        raise ValueError(f"sway coefficient must lie in [{low}, {high:.3f}) for a monotonic schedule, got {coefficient}")
    t_f5 = u + coefficient * (torch.cos(math.pi / 2.0 * u) - 1.0 + u)  # F5-TTS time: 0 noise, 1 data
    return 1.0 - t_f5


def timestep_schedule(steps: int, shift: float = 1.0, sway: float | None = None) -> Tensor:
    """``steps + 1`` times from 1 to 0: uniform, or swayed (:func:`sway_time`), then time-shifted
    (SD3 §5.3.2). float32."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if sway is None:
        t = torch.linspace(1.0, 0.0, steps + 1)  # (steps + 1,)
    else:
        t = sway_time(torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64), sway).float()  # (steps + 1,)
    t = shift_time(t, shift)
    t[0], t[-1] = 1.0, 0.0  # exact ends whatever the rounding of the shift
    return t
