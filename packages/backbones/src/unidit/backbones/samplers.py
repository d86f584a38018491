"""ODE samplers for rectified flow, one shared signature (k-diffusion style).

Each sampler integrates ``dx/dt = v(x, t)`` from ``t = 1`` (noise) down to
``t = 0`` (data) over a decreasing ``timesteps`` tensor (Liu et al. 2022;
Esser et al. 2024, SD3 §2)::

    sampler(model_fn, x, timesteps, cond=None, callback=None) -> x0

``model_fn(x (B, L, C), t) -> v (B, L, C)`` sees one time per sample, ``t (B,)``,
or with a ``Conditioning`` one time per token, ``t (B, L)``.
With a ``Conditioning`` the held tokens get ``t = min(t, 1 - strength)`` and,
after every (sub)step, are reset to their clean value noised to their own time
(LTX-Video §3.4). At strength 1 that time is 0 and they come out equal to
``cond.x`` bit for bit.

* ``euler``: first order, one evaluation per step.
* ``heun``: second order trapezoid (Karras et al. 2022, Alg. 1); the last step
  to t = 0 falls back to Euler, as the second evaluation would be at t = 0.
* ``midpoint``: second order explicit midpoint, two evaluations per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from unidit.backbones.held_tokens import Conditioning

ModelFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, Tensor, Tensor], None]


class _Stepper:
    """Per-token times and held-token resets shared by every sampler."""

    def __init__(self, model_fn: ModelFn, x: Tensor, cond: Conditioning | None) -> None:
        self.model_fn = model_fn
        self.cond = cond
        self.noise = x  # the starting noise, reused to noise held tokens
        self.token_shape = x.shape[:2]  # (B, L)

    def times(self, t: Tensor) -> Tensor:
        if self.cond is not None:
            return self.cond.token_t(t)  # (B, L)
        return t.expand(self.token_shape[:1])  # (B,): nothing held, one time per sample

    def hold(self, x: Tensor, t: Tensor) -> Tensor:
        if self.cond is None:
            return x
        return self.cond.hold(x, self.noise, self.times(t))  # (B, L, C)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model_fn(x, self.times(t))  # times stay float32


def _run(
    step: Callable[[_Stepper, Tensor, Tensor, Tensor], Tensor],
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    cond: Conditioning | None,
    callback: Callback | None,
) -> Tensor:
    stepper = _Stepper(model_fn, x, cond)
    timesteps = timesteps.to(x.device)
    x = stepper.hold(x, timesteps[0])  # (B, L, C)
    for i in range(len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        x = step(stepper, x, t, t_next)  # (B, L, C)
        x = stepper.hold(x, t_next)
        if callback is not None:
            callback(i, t_next, x)
    return x


def _euler_step(s: _Stepper, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    return x + (t_next - t) * s.velocity(x, t)  # (B, L, C)


def _heun_step(s: _Stepper, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    dt = t_next - t
    v = s.velocity(x, t)  # (B, L, C)
    x_euler = x + dt * v  # (B, L, C)
    if float(t_next) == 0.0:
        return x_euler
    v_next = s.velocity(s.hold(x_euler, t_next), t_next)  # (B, L, C)
    return x + dt * 0.5 * (v + v_next)  # (B, L, C)


def _midpoint_step(s: _Stepper, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    dt = t_next - t
    t_mid = t + 0.5 * dt
    x_mid = s.hold(x + 0.5 * dt * s.velocity(x, t), t_mid)  # (B, L, C)
    return x + dt * s.velocity(x_mid, t_mid)  # (B, L, C)


@torch.no_grad()
def euler(
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    cond: Conditioning | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler integration of the flow ODE from ``timesteps[0]`` to ``timesteps[-1]``."""
    return _run(_euler_step, model_fn, x, timesteps, cond, callback)


@torch.no_grad()
def heun(
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    cond: Conditioning | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Heun (trapezoid) integration; Euler on the final step to t = 0."""
    return _run(_heun_step, model_fn, x, timesteps, cond, callback)


@torch.no_grad()
def midpoint(
    model_fn: ModelFn,
    x: Tensor,
    timesteps: Tensor,
    cond: Conditioning | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Explicit midpoint integration."""
    return _run(_midpoint_step, model_fn, x, timesteps, cond, callback)


SAMPLERS: dict[str, Callable[..., Tensor]] = {"euler": euler, "heun": heun, "midpoint": midpoint}
