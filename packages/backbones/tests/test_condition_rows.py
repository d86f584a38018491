"""Per-token times run the conditioning once per distinct (sample, time) pair, not once per token."""

from __future__ import annotations

import pytest
import torch
from unidit.backbones import conditioning
from unidit.backbones.build import build_backbone
from unidit.backbones.conditioning import ConditionRows, condition_rows
from unidit.backbones.config import BackboneConfig
from unidit.backbones.modulation import gated_residual, modulate
from unidit.backbones.slots import DATA, PAD


def test_pairs_reconstruct_every_tokens_time_and_sample():
    t = torch.tensor([[0.7, 0.0, 0.7, 0.7], [0.2, 0.2, 0.2, 0.2], [0.0, 0.0, 0.9, 0.9]])  # (B, L), held at 0
    sample_of_token = torch.arange(3).repeat_interleave(4)
    rows = condition_rows(t, sample_of_token)
    assert len(rows.t) == 5  # (0, .7), (0, 0), (1, .2), (2, 0), (2, .9)
    torch.testing.assert_close(rows.t[rows.index], t.reshape(-1), rtol=0, atol=0)
    assert torch.equal(rows.sample[rows.index], sample_of_token)


@pytest.mark.parametrize("function", [modulate, gated_residual])
def test_per_pair_modulation_of_a_padded_batch_has_exact_gradients(function):
    """(U, 1, D) terms spread onto a (B, L, D) batch by index == gathering them first, values and gradients."""
    g = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3])  # (B·L,) pair of each token, B = 2, L = 4

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)

    def spread(per_row):  # (U, 1, D) -> (B, L, D)
        return per_row[index, 0].view(2, 4, -1)

    x, per_row = leaf(2, 4, 5), leaf(4, 1, 5)
    if function is modulate:
        other = leaf(4, 1, 5)
        reference = modulate(x, spread(per_row), spread(other))
    else:
        other = leaf(2, 4, 5)
        reference = gated_residual(x, spread(per_row), other)
    torch.testing.assert_close(function(x, per_row, other, index), reference)
    assert torch.autograd.gradcheck(lambda *inputs: function(*inputs, index), (x, per_row, other))


def one_row_per_token(t: torch.Tensor, sample_of_token: torch.Tensor) -> ConditionRows:
    """The undeduplicated reference: every token its own conditioning row."""
    flat = t.reshape(-1)
    return ConditionRows(flat, sample_of_token.reshape(-1).long(), torch.arange(flat.numel()))


@pytest.mark.parametrize("arch", ["flag_dit", "mmdit"])
def test_deduplicated_conditioning_equals_one_row_per_token(arch, monkeypatch):
    """Held tokens (t = 0) beside noisy ones, PAD slots at their own time: the network's output and
    every parameter gradient equal those of conditioning every token on its own (float32, within
    1e-5), while the pairs are 5 rows instead of 12 tokens."""
    torch.manual_seed(0)
    config = BackboneConfig(arch=arch, dim=32, depth=2, num_heads=2, context_dim=16, num_modalities=2)
    model = build_backbone(config)
    for p in model.parameters():  # leave the zero init: every adaLN path must carry signal
        torch.nn.init.normal_(p, std=0.1)
    batch, length = 2, 6
    x = torch.randn(batch, length, 32)
    positions = torch.zeros(batch, length, 3, dtype=torch.long)
    positions[..., 2] = torch.arange(length)
    slot_kind = torch.full((batch, length), DATA)
    slot_kind[1, -1] = PAD
    key_mask = slot_kind != PAD
    context, modality = torch.randn(batch, 3, 16), torch.tensor([0, 1])
    t = torch.tensor([[0.0, 0.6, 0.6, 0.6, 0.6, 0.6], [0.3, 0.3, 0.3, 0.0, 0.0, 1.0]])
    rows = condition_rows(t, torch.arange(batch).repeat_interleave(length))
    assert len(rows.t) == 5

    def run():
        out = model(x, t, positions, slot_kind, key_mask, context, None, modality)  # (B, L, D)
        grads = torch.autograd.grad((out[key_mask] ** 2).sum(), list(model.parameters()), allow_unused=True)
        return out.detach(), grads

    deduplicated, grads = run()
    monkeypatch.setattr(conditioning, "condition_rows", one_row_per_token)
    reference, reference_grads = run()
    torch.testing.assert_close(deduplicated[key_mask], reference[key_mask], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, reference_grads):
        if b is None:
            assert a is None
            continue
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert sum(int(g is not None and g.abs().max() > 0) for g in grads) > 10
