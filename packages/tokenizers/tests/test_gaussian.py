"""The shared VAE posterior: KL, clamping and the reparameterised sample."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence
from unidit.tokenizers.gaussian import DiagonalGaussian


def test_kl_matches_torch_distributions_and_vanishes_at_the_prior():
    g = torch.Generator().manual_seed(0)
    moments = torch.randn(3, 8, 5, 2, 2, generator=g)  # (B, 2C, T, H, W)
    q = DiagonalGaussian.from_moments(moments)
    expected = kl_divergence(Normal(q.mean, q.std), Normal(0.0, 1.0))
    torch.testing.assert_close(q.kl_elements(), expected, rtol=1e-5, atol=1e-6)
    prior = DiagonalGaussian(torch.zeros(2, 4, 7), torch.zeros(2, 4, 7))
    assert torch.equal(prior.kl_elements(), torch.zeros(2, 4, 7))


def test_logvar_is_clamped_and_sampling_is_reparameterised():
    mean = torch.zeros(1, 2, 4, requires_grad=True)
    logvar = torch.tensor([[[-50.0, 0.0, 30.0, 1.0]] * 2], requires_grad=True)
    q = DiagonalGaussian(mean, logvar, logvar_range=(-30.0, 20.0))
    assert q.logvar.min() == -30.0 and q.logvar.max() == 20.0
    z = q.sample(torch.Generator().manual_seed(0))
    z.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))  # d(mean + std * eps)/d mean = 1
    assert logvar.grad[0, 0, 1] != 0 and logvar.grad[0, 0, 0] == 0  # clamped entries pass no gradient
    assert torch.equal(q.mode(), mean)


def test_sample_statistics():
    q = DiagonalGaussian(torch.full((1, 1, 200_000), 2.0), torch.full((1, 1, 200_000), 2 * torch.log(torch.tensor(3.0))))
    z = q.sample(torch.Generator().manual_seed(1))
    assert abs(z.mean().item() - 2.0) < 0.03 and abs(z.std().item() - 3.0) < 0.03


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="must have one shape"):
        DiagonalGaussian(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
