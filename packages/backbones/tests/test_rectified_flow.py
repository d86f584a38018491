"""Rectified flow objective and ODE samplers on problems with known answers."""

import math

import pytest
import torch
from torch import nn
from unidit.backbones.rectified_flow import (
    Conditioning,
    RectifiedFlow,
    logit_normal_t,
    resolution_shift,
    shift_time,
)
from unidit.backbones.samplers import SAMPLERS
from unidit.backbones.time_schedule import timestep_schedule


def test_time_functions():
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(shift_time(t, 1.0), t)
    assert math.isclose(float(shift_time(torch.tensor(0.5), 3.0)), 0.75)
    assert (shift_time(t, 3.0) >= t).all()  # shift > 1 moves time towards noise
    assert resolution_shift(1024, 256, 1.5) == pytest.approx(3.0)

    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = logit_normal_t(4096, generator=g1), logit_normal_t(4096, generator=g2)
    assert torch.equal(a, b) and a.shape == (4096,)
    assert ((a > 0) & (a < 1)).all() and abs(float(a.median()) - 0.5) < 0.03

    sched = timestep_schedule(10, shift=3.0)
    assert sched.shape == (11,) and sched[0] == 1 and sched[-1] == 0
    assert (sched.diff() < 0).all()


def test_token_t_holds_conditioning_tokens():
    mask = torch.tensor([[True, False, False], [False, False, True]])
    cond = Conditioning(x=torch.zeros(2, 3, 1), mask=mask, strength=0.8)
    tt = cond.token_t(torch.tensor([0.9, 0.1]))
    expected = torch.tensor([[0.2, 0.9, 0.9], [0.1, 0.1, 0.1]])
    assert torch.allclose(tt, expected)


def per_token(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` times: the objective and samplers hand ``(B,)`` when no token is held."""
    return t[:, None].expand(x.shape[:2]) if t.dim() == 1 else t


class TinyVelocity(nn.Module):
    """MLP v(x_t, t) on 2-d tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, per_token(t, x)[..., None]], dim=-1))  # (B, L, 2)


def test_loss_decreases_fitting_two_points():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    points = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    model = TinyVelocity()
    flow = RectifiedFlow()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        idx = torch.randint(0, 2, (64,), generator=gen)
        x0 = points[idx][:, None, :]  # (64, 1, 2)
        loss = flow.loss(model, x0, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.75 * first

    noise = torch.randn(256, 1, 2, generator=gen)
    x = flow.sample(model, noise, steps=20, sampler="heun")
    nearest = torch.cdist(x[:, 0], points).min(dim=1).values
    assert float(nearest.median()) < 0.3  # samples land near the two points


def gaussian_velocity(mu: float, s: float):
    """Exact velocity E[ε - x0 | x_t] for x0 ~ N(mu, s²), ε ~ N(0, 1)."""

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = per_token(t, x)[..., None].to(x.dtype)
        var = (1 - t) ** 2 * s**2 + t**2
        centred = x - (1 - t) * mu
        return (t - (1 - t) * s**2) / var * centred - mu

    return v


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_reach_a_constant_target(name):
    # x0 = c always: v = (x_t - c) / t exactly, paths are straight, every sampler is exact.
    c = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    model = lambda x, t: (x - c) / per_token(t, x)[..., None]
    noise = torch.randn(4, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = SAMPLERS[name](model, noise, timestep_schedule(8, shift=2.0).double())
    assert torch.allclose(x, c.expand_as(x), atol=1e-9)


def test_second_order_samplers_converge_faster_on_a_gaussian():
    # For x0 ~ N(mu, s²) the flow ODE maps ε to mu + s·ε exactly.
    mu, s = 1.5, 0.7
    noise = torch.randn(8, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = mu + s * noise
    model = gaussian_velocity(mu, s)

    def error(name, steps):
        x = SAMPLERS[name](model, noise, timestep_schedule(steps).double())
        return float((x - exact).abs().max())

    # Halving the step size halves Euler's error and quarters the second-order ones'.
    assert 1.7 < error("euler", 16) / error("euler", 32) < 2.3
    for name in ("heun", "midpoint"):
        assert error(name, 16) / error(name, 32) > 3.5
        assert error(name, 16) < 0.1 * error("euler", 16)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("strength", [1.0, 0.7])
def test_conditioning_tokens_come_out_bit_identical(name, strength):
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 4, generator=gen)
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.tanh(x @ weight) + t[..., None]

    mask = torch.rand(3, 10, generator=gen) < 0.4
    cond = Conditioning(x=torch.randn(3, 10, 4, generator=gen), mask=mask, strength=strength)
    flow = RectifiedFlow(shift=3.0)
    out = flow.sample(model, torch.randn(3, 10, 4, generator=gen), steps=6, sampler=name, cond=cond)
    assert torch.equal(out[mask], cond.x[mask])
    for t in seen:  # held tokens never see a time above 1 - strength
        assert (t[mask] <= 1 - strength + 1e-6).all()
        if strength == 1.0:
            assert (t[mask] == 0).all()


def test_loss_ignores_masked_and_conditioning_tokens():
    gen_data = torch.Generator().manual_seed(4)
    x0 = torch.randn(3, 12, 4, generator=gen_data)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, 8:] = False  # padding
    cond_mask = torch.zeros(3, 12, dtype=torch.bool)
    cond_mask[:, :2] = True  # e.g. a first frame held clean
    cond = Conditioning(x=x0.clone(), mask=cond_mask)
    counted = mask & ~cond_mask

    def model_a(x, t):
        return x * 0.5

    def model_b(x, t):
        junk = torch.full_like(x, float("nan"))
        return torch.where(counted[..., None], x * 0.5, junk)

    flow = RectifiedFlow(resolution_dependent_shift=True, base_seq_len=8)
    la = flow.loss(model_a, x0, mask, cond, generator=torch.Generator().manual_seed(5))
    lb = flow.loss(model_b, x0, mask, cond, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(la) and torch.equal(la, lb)

    # The conditioning tokens enter the model clean (t = 0) and the others noisy.
    captured = {}

    def model_c(x, t):
        captured["x"], captured["t"] = x, t
        return torch.zeros_like(x)

    flow.loss(model_c, x0, mask, cond, generator=torch.Generator().manual_seed(5))
    assert (captured["t"][cond_mask] == 0).all() and (captured["t"][~cond_mask] > 0).all()
    assert torch.equal(captured["x"][cond_mask], x0[cond_mask])


def test_loss_matches_formula_without_masks():
    x0 = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(6))
    flow = RectifiedFlow(t_mean=0.3, t_std=0.8, shift=2.0)
    captured = {}

    def model(x, t):
        captured["x"], captured["t"] = x, t
        return torch.zeros_like(x)

    loss = flow.loss(model, x0, generator=torch.Generator().manual_seed(7))
    assert captured["t"].shape == (2,)  # nothing held: one time per sample, so adaLN can run per sample
    t = captured["t"][:, None, None]  # (B, 1, 1)
    eps = (captured["x"] - (1 - t) * x0) / t
    assert torch.allclose(loss, (eps - x0).pow(2).mean(), atol=1e-5)
