"""Exponential moving average of a network's weights (Polyak averaging).

Diffusion models sample from EMA weights (DiT §4, Karras et al. 2024). The
average lives in a frozen copy of the network registered as a submodule, so
it is part of the LightningModule's ``state_dict``: a Lightning checkpoint
carries it and a resumed run continues the average exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMAWeights(nn.Module):
    """A frozen shadow copy of ``network`` updated by ``update(network)``.

    ``decay`` is approached through a warm-up ``min(decay, (1 + n) / (10 + n))``
    so the average is not dominated by the random initialisation early on.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.network = copy.deepcopy(network).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> "EMAWeights":
        # The shadow network always stays in eval mode.
        super().train(mode)
        self.network.eval()
        return self

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        n = int(self.num_updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        shadow = [p for p in self.network.parameters()]
        live = [p.detach() for p in network.parameters()]
        if len(shadow) != len(live):
            raise ValueError("EMA network and live network have different parameter lists")
        torch._foreach_lerp_(shadow, live, 1.0 - decay)
        for s, b in zip(self.network.buffers(), network.buffers()):
            s.copy_(b)
        self.num_updates += 1
