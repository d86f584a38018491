"""Classifier-free guidance with rescale (Ho & Salimans 2022; Lin et al. 2024)."""

import torch
from unidit.backbones.guidance import GuidedModel, cfg_combine


def test_cfg_combine_matches_hand_computed_numbers():
    # Sample 0: c = [1, 3], u = [1, 1], w = 2 -> p = [1, 5].
    #   std(c) = sqrt(2), std(p) = sqrt(8) -> p_r = p / 2 = [0.5, 2.5]
    #   phi = 0.7 -> 0.7 * [0.5, 2.5] + 0.3 * [1, 5] = [0.65, 3.25]
    # Sample 1: c = [2, 2], u = [0, 4] -> p = [4, 0]; std(c) = 0 -> p_r = [0, 0]
    #   -> 0.3 * [4, 0] = [1.2, 0]
    c = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    u = torch.tensor([[1.0, 1.0], [0.0, 4.0]])
    plain = cfg_combine(c, u, scale=2.0)
    assert torch.allclose(plain, torch.tensor([[1.0, 5.0], [4.0, 0.0]]))
    out = cfg_combine(c, u, scale=2.0, rescale_phi=0.7)
    assert torch.allclose(out, torch.tensor([[0.65, 3.25], [1.2, 0.0]]))


def test_phi_zero_is_plain_cfg_and_scale_one_is_cond():
    gen = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 5, 4, generator=gen), torch.randn(3, 5, 4, generator=gen)
    assert torch.allclose(cfg_combine(c, u, 4.5, rescale_phi=0.0), u + 4.5 * (c - u))
    assert torch.equal(cfg_combine(c, u, 1.0, rescale_phi=0.7), c)
    # Full rescale restores each sample's conditional standard deviation.
    full = cfg_combine(c, u, 7.0, rescale_phi=1.0)
    assert torch.allclose(full.flatten(1).std(1), c.flatten(1).std(1), atol=1e-5)


def test_guided_model_evaluates_the_doubled_batch_once():
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 6, 3, generator=gen), torch.rand(2, 6, generator=gen)
    context = torch.tensor([1.0, 1.0, 0.0, 0.0])  # [cond; uncond] rows prepared by the caller
    calls = []

    def model(x2, t2):
        calls.append(x2.shape[0])
        return x2 * (1 + context[:, None, None]) + t2[..., None]

    guided = GuidedModel(model, scale=3.0, rescale_phi=0.5)
    out = guided(x, t)
    assert calls == [4] and out.shape == x.shape
    v_cond, v_uncond = 2 * x + t[..., None], x + t[..., None]
    assert torch.allclose(out, cfg_combine(v_cond, v_uncond, 3.0, 0.5))


def test_rescale_statistics_ignore_tokens_outside_the_mask():
    gen = torch.Generator().manual_seed(2)
    c, u = torch.randn(2, 6, 3, generator=gen), torch.randn(2, 6, 3, generator=gen)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])  # sample 1: two padding slots
    out = cfg_combine(c, u, 5.0, rescale_phi=0.5, mask=mask)
    garbage_c, garbage_u = c.clone(), u.clone()
    garbage_c[1, 4:], garbage_u[1, 4:] = 100.0, -100.0  # whatever the network says at padding
    changed = cfg_combine(garbage_c, garbage_u, 5.0, rescale_phi=0.5, mask=mask)
    assert torch.allclose(changed[mask], out[mask], atol=1e-6)
    # the masked statistics are those of the real tokens alone
    alone = cfg_combine(c[1:, :4], u[1:, :4], 5.0, rescale_phi=0.5)
    assert torch.allclose(out[1, :4], alone[0], atol=1e-6)
    # an all-True mask is the unmasked rescale
    assert torch.allclose(cfg_combine(c, u, 5.0, 0.5, torch.ones(2, 6, dtype=torch.bool)), cfg_combine(c, u, 5.0, 0.5))
