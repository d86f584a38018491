"""F5-TTS sway sampling in unidit's time direction (t = 1 noise, t = 0 data)."""

from __future__ import annotations

import math

import pytest
import torch
from unidit.backbones.rectified_flow import RectifiedFlow
from unidit.backbones.time_schedule import SWAY_RANGE, sway_time, timestep_schedule


@pytest.mark.parametrize("coefficient", [-1.0, -0.5, 0.0, 0.5, 1.5])
def test_sway_schedule_runs_from_noise_to_data_monotonically(coefficient):
    t = timestep_schedule(32, sway=coefficient)
    assert t[0] == 1.0 and t[-1] == 0.0
    assert (t[1:] < t[:-1]).all()


def test_sway_minus_one_is_cos_and_packs_steps_near_noise():
    u = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    assert torch.allclose(sway_time(u, -1.0), torch.cos(math.pi / 2 * u))  # F5-TTS: t_f5 = 1 - cos(πu/2)
    swayed, uniform = timestep_schedule(10, sway=-1.0), timestep_schedule(10)
    assert (swayed[1:-1] > uniform[1:-1]).all()  # every inner step nearer the noise end than uniform
    assert torch.equal(timestep_schedule(10, sway=0.0), uniform)  # s = 0 is the uniform schedule


def test_sway_composes_with_shift_and_reaches_the_sampler():
    calls = []
    flow = RectifiedFlow()
    flow.sample(lambda x, t: calls.append(float(t[0])) or torch.zeros_like(x), torch.zeros(1, 2, 3), steps=4,
                sway=-1.0)
    assert calls == pytest.approx(timestep_schedule(4, sway=-1.0)[:-1].tolist())
    shifted = timestep_schedule(8, shift=3.0, sway=-1.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and (shifted[1:] < shifted[:-1]).all()


def test_sway_coefficients_that_would_reverse_time_are_refused():
    low, high = SWAY_RANGE
    for bad in (low - 0.01, high):
        with pytest.raises(ValueError, match="sway coefficient"):
            timestep_schedule(8, sway=bad)
