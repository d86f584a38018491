"""FORA-style step caching: exact when off, reuses the block residual when on."""

from __future__ import annotations

import pytest
import torch
from test_backbone_nets import ARCHS, grid_inputs, trained
from unidit.backbones.rectified_flow import RectifiedFlow
from unidit.backbones.step_cache import StepCache, cached_steps


class CountingBlocks:
    def __init__(self):
        self.calls = 0

    def __call__(self, hidden):
        self.calls += 1
        return hidden * 2.0 + 1.0


def test_schedule_computes_warmup_then_one_call_in_interval():
    cache, blocks = StepCache(interval=3, warmup=2), CountingBlocks()
    computed = []
    for _ in range(8):
        before = blocks.calls
        cache.run(torch.ones(1, 2, 4), blocks)
        computed.append(blocks.calls > before)
    assert computed == [True, True, False, False, True, False, False, True]
    assert cache.computed == 4


def test_reuse_adds_the_cached_residual():
    cache, blocks = StepCache(interval=2, warmup=1), CountingBlocks()
    first = cache.run(torch.ones(1, 2, 4), blocks)  # residual = x + 1 = 2
    reused = cache.run(torch.full((1, 2, 4), 5.0), blocks)
    assert torch.equal(first, torch.full((1, 2, 4), 3.0))
    assert torch.equal(reused, torch.full((1, 2, 4), 7.0))  # 5 + cached 2, blocks not run
    assert blocks.calls == 1


def test_a_new_shape_is_always_computed():
    cache, blocks = StepCache(interval=4, warmup=1), CountingBlocks()
    cache.run(torch.ones(1, 2, 4), blocks)
    cache.run(torch.ones(2, 2, 4), blocks)
    assert blocks.calls == 2


@pytest.mark.parametrize("arch", ARCHS)
def test_interval_one_is_exact_and_same_input_reuses_exactly(arch):
    model = trained(arch)
    inp = grid_inputs()
    with torch.no_grad():
        reference = model(**inp)
        with cached_steps(model, interval=1) as caches:
            assert caches == []
            assert torch.equal(model(**inp), reference)
        with cached_steps(model, interval=2, warmup=1) as (cache,):
            first, second = model(**inp), model(**inp)
        assert cache.computed == 1 and cache.calls == 2
    assert torch.allclose(first, reference, atol=1e-6)
    assert torch.allclose(second, reference, atol=1e-5)  # same input: the residual reproduces the blocks
    assert model.step_cache is None  # removed on exit


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_sampling_stays_close_to_exact_sampling(arch):
    """On a smooth trajectory the reused residual is a small perturbation, not a different sample."""
    model = trained(arch)
    inp = grid_inputs()
    inputs = {k: v for k, v in inp.items() if k not in ("x", "t")}

    def velocity(x, t):
        return model(x, t[:, 0] if t.dim() == 2 else t, **inputs)

    noise = torch.randn(inp["x"].shape, generator=torch.Generator().manual_seed(3))
    flow = RectifiedFlow()
    exact = flow.sample(velocity, noise, steps=20)
    with cached_steps(model, interval=2, warmup=2) as (cache,):
        cached = flow.sample(velocity, noise, steps=20)
    assert cache.computed == 11  # 2 warm-up calls + 9 of the remaining 18
    relative = (cached - exact).norm() / exact.norm()
    assert 0 < relative < 0.1


def test_a_network_without_backbone_is_refused():
    with pytest.raises(ValueError, match="no backbone"):
        with cached_steps(torch.nn.Linear(2, 2), interval=2):
            pass
