"""Masked discrete diffusion: schedules, the loss on a toy problem, and the confidence-ordered sampler."""

import math

import pytest
import torch
from torch import nn
from unidit.backbones.guidance import GuidedModel
from unidit.backbones.masked_diffusion import (
    MaskedDiffusion,
    code_importance,
    mask_lowest,
    mask_ratio,
    masked_counts,
)

K, L = 8, 12


class ToyCodeModel(nn.Module):
    """Code embedding -> one bidirectional transformer layer -> logits over K codes."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(K + 1, 32)
        self.time = nn.Linear(1, 32)
        self.layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, K)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(tokens) + self.time(t[:, None, None].float())  # (B, L, 32)
        return self.head(self.layer(hidden))  # (B, L, K)


def toy_codes(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Rows of one random code: any unmasked token of a row tells every masked one."""
    return torch.randint(0, K, (batch, 1), generator=generator).expand(batch, L).contiguous()  # (B, L)


def test_schedule_is_monotone_and_counts_are_exact():
    t = torch.linspace(0, 1, 101)
    ratio = mask_ratio(t)
    assert ratio[0] == 0 and math.isclose(float(ratio[-1]), 1.0) and (ratio.diff() > 0).all()
    free = torch.tensor([10, 10, 10, 1, 0])
    counts = masked_counts(torch.tensor([0.0, 0.25, 1.0, 0.5, 0.5]), free)
    assert counts.tolist() == [1, 3, 10, 1, 0]  # at least one while any is free, ceil, at most free

    diffusion = MaskedDiffusion(K)
    codes = toy_codes(16, torch.Generator().manual_seed(0))
    valid = torch.arange(L)[None].expand(16, L) < torch.randint(4, L + 1, (16, 1), generator=torch.Generator().manual_seed(1))
    given = torch.zeros(16, L, dtype=torch.bool)
    given[:, :2] = True
    previous = torch.zeros(16, L, dtype=torch.bool)
    for level in torch.linspace(0.05, 1.0, 8):
        t = torch.full((16,), float(level))
        tokens, masked = diffusion.corrupt(codes, t, valid, given, torch.Generator().manual_seed(7))
        expected = masked_counts(mask_ratio(t), (valid & ~given).sum(1))
        assert torch.equal(masked.sum(1), expected)
        assert not (masked & (given | ~valid)).any()  # given and PAD positions are never masked
        assert torch.equal(tokens[masked], torch.full_like(tokens[masked], diffusion.mask_id))
        assert torch.equal(tokens[~masked], codes[~masked])
        assert not (previous & ~masked).any()  # same scores: the masked sets grow with t (nested)
        previous = masked


def test_priority_schedule_masks_least_informative_codes_first():
    counts = torch.tensor([1000, 500, 200, 100, 50, 20, 5, 1])
    importance = code_importance(counts)
    assert (importance.diff() > 0).all()  # rarer codes carry more information (-log p)
    diffusion = MaskedDiffusion(K, schedule="priority", importance=importance, priority_noise=0.0)
    codes = torch.arange(K).repeat(2, 1)  # (2, 8): every code once
    for n in range(1, K + 1):
        t = torch.full((2,), 2 / math.pi * math.asin(n / K - 1e-6))
        _, masked = diffusion.corrupt(codes, t)
        assert masked[0].tolist() == [i < n for i in range(K)]  # the n most common (least informative) codes
    with pytest.raises(ValueError, match="set_importance"):
        MaskedDiffusion(K, schedule="priority").corrupt(codes, torch.ones(2))
    with pytest.raises(ValueError, match="schedule"):
        MaskedDiffusion(K, schedule="linear")
    assert mask_lowest(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([2]), torch.tensor([[True, False, True]])).tolist() == [[True, False, True]]


@pytest.mark.parametrize("schedule", ["cosine", "priority"])
def test_loss_falls_and_sampler_learns_the_toy_rule(schedule):
    torch.manual_seed(0)
    model = ToyCodeModel()
    counts = torch.ones(K) + torch.arange(K)  # any table: the toy's codes are uniform
    diffusion = MaskedDiffusion(K, schedule=schedule, importance=code_importance(counts))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(120):
        loss = diffusion.loss(model, toy_codes(32, generator), generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 1.8 and last < 0.5 * first, (first, last)

    model.eval()
    valid = torch.ones(16, L, dtype=torch.bool)
    codes = diffusion.sample(model, valid, steps=10, temperature=0.0, generator=torch.Generator().manual_seed(0))
    constant = (codes == codes[:, :1]).all(dim=1).float().mean()
    assert constant > 0.9, float(constant)  # every row one code, as in the data


def test_given_codes_come_out_exactly_and_sampling_is_seeded():
    torch.manual_seed(0)
    model = ToyCodeModel().eval()
    diffusion = MaskedDiffusion(K)
    generator = torch.Generator().manual_seed(3)
    truth = toy_codes(4, generator)
    valid = torch.ones(4, L, dtype=torch.bool)
    valid[3, 9:] = False  # a shorter row: its PAD positions come out 0
    given = torch.zeros(4, L, dtype=torch.bool)
    given[:, :3] = True  # continuation
    given[1, 8:] = True  # in-betweening
    seen = []

    def draw(seed, **options):
        return diffusion.sample(model, valid, truth, given, steps=5, generator=torch.Generator().manual_seed(seed),
                                callback=lambda step, tokens: seen.append(tokens.clone()), **options)

    a = draw(0, top_k=3, confidence_noise=1.0)
    assert torch.equal(a[given & valid], truth[given & valid])
    assert (a[3, 9:] == 0).all() and (a[valid] < K).all()  # nothing left masked
    assert torch.equal(a, draw(0, top_k=3, confidence_noise=1.0))
    assert not torch.equal(a, draw(1, top_k=3, confidence_noise=1.0))
    masked_left = [int(((s == K) & valid).sum()) for s in seen[:5]]
    assert masked_left == sorted(masked_left, reverse=True) and masked_left[-1] == 0

    # classifier-free guidance on logits through the shared GuidedModel: [cond; uncond] in one call
    guided = GuidedModel(lambda x, t: model(x, t) * torch.cat([torch.ones(4), torch.zeros(4)])[:, None, None], 3.0)
    b = diffusion.sample(guided, valid, truth, given, steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b[given & valid], truth[given & valid])


def test_bad_inputs_are_named():
    diffusion = MaskedDiffusion(K)
    model = ToyCodeModel()
    with pytest.raises(ValueError, match="codes: expected code indices in"):
        diffusion.loss(model, torch.full((2, L), K))
    with pytest.raises(ValueError, match="steps"):
        diffusion.sample(model, torch.ones(1, L, dtype=torch.bool), steps=0)
    with pytest.raises(ValueError, match="given and given_codes"):
        diffusion.sample(model, torch.ones(1, L, dtype=torch.bool), given=torch.ones(1, L, dtype=torch.bool))
