import math

import torch
from torch import nn
from unidit.training.ema import EMAWeights
from unidit.training.schedule import warmup_cosine


def test_ema_tracks_weights_with_warmup_decay():
    torch.manual_seed(0)
    live = nn.Linear(3, 2)
    ema = EMAWeights(live, decay=0.9)
    start = ema.network.weight.clone()
    with torch.no_grad():
        live.weight.add_(1.0)
    ema.update(live)  # first update uses decay min(0.9, 1/10) = 0.1
    expected = start + 0.9 * (live.weight - start)
    torch.testing.assert_close(ema.network.weight, expected)
    assert int(ema.num_updates) == 1
    assert not any(p.requires_grad for p in ema.network.parameters())


def test_ema_state_is_in_state_dict_and_restores_exactly():
    live = nn.Linear(4, 4)
    ema = EMAWeights(live, decay=0.99)
    for _ in range(5):
        with torch.no_grad():
            live.weight.mul_(1.1)
        ema.update(live)
    clone = EMAWeights(nn.Linear(4, 4), decay=0.99)
    clone.load_state_dict(ema.state_dict())
    assert torch.equal(clone.network.weight, ema.network.weight)
    assert int(clone.num_updates) == 5


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 10, 100) == 0.1
    assert warmup_cosine(9, 10, 100) == 1.0
    assert math.isclose(warmup_cosine(10, 10, 100), 1.0)
    assert math.isclose(warmup_cosine(100, 10, 100, min_ratio=0.1), 0.1)
    assert math.isclose(warmup_cosine(55, 10, 100, min_ratio=0.0), 0.5, abs_tol=1e-9)
    assert warmup_cosine(500, 10, -1) == 1.0
