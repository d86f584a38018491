"""Training-free reuse of block outputs across sampling steps (FORA, Selvaraju et al. 2024).

Between neighbouring ODE steps the hidden states a DiT's blocks add to their
input change slowly. FORA (arXiv:2407.01425, §3) stores every block's
attention and MLP outputs on one step and reuses them for the next ``N - 1``
steps, recomputing them every ``N``-th step ("static caching"). When every
block reuses its cached outputs, the stack's output is its input plus the sum
of the cached block contributions, i.e. the input plus one cached residual of
the whole stack; that is what :class:`StepCache` stores. Everything outside
the stack (timestep embedding, placeholders, final adaLN norm, the task's head)
still runs on every call, with the current ``t``.

HarmoniCa and Learning-to-Cache learn which blocks to skip; the static schedule
here needs no training. The first ``warmup`` calls are always computed (early,
high-noise steps change the most), then one call in ``interval``.

Usage, for any network holding a Flag-DiT or MMDiT backbone::

    with cached_steps(network, interval=2, warmup=2):
        x0 = flow.sample(model_fn, noise, steps=20)

A call counts as one step: Heun and midpoint make two calls per step.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import Tensor, nn


class StepCache:
    """Decides per backbone call whether to run the block stack or reuse its cached residual.

    Args:
        interval: recompute the blocks on one call in ``interval`` (1 = never reuse).
        warmup: the first ``warmup`` calls always run the blocks.
    """

    def __init__(self, interval: int = 2, warmup: int = 1) -> None:
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (the first call has nothing to reuse), got {warmup}")
        self.interval = interval
        self.warmup = warmup
        self.calls = 0
        self.computed = 0
        self._residual: Tensor | None = None

    def reset(self) -> None:
        self.calls = self.computed = 0
        self._residual = None

    def _compute_now(self, hidden: Tensor) -> bool:
        if self._residual is None or self._residual.shape != hidden.shape:
            return True
        if self.calls < self.warmup:
            return True
        return (self.calls - self.warmup + 1) % self.interval == 0  # reuse right after warm-up

    def run(self, hidden: Tensor, blocks) -> Tensor:
        """``blocks(hidden) -> hidden`` on a compute call; ``hidden + cached residual`` otherwise."""
        compute = self._compute_now(hidden)
        self.calls += 1
        if not compute:
            return hidden + self._residual  # (B, L, D)
        out = blocks(hidden)  # (B, L, D)
        self._residual = out - hidden  # (B, L, D)
        self.computed += 1
        return out


def _cacheable(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if hasattr(m, "step_cache")]


@contextmanager
def cached_steps(network: nn.Module, interval: int = 2, warmup: int = 1) -> Iterator[list[StepCache]]:
    """Install a fresh :class:`StepCache` on every backbone inside ``network`` for the ``with`` body.

    ``interval == 1`` installs nothing (exact sampling). Yields the caches (for counting calls).
    """
    backbones = _cacheable(network)
    if interval == 1:
        yield []
        return
    if not backbones:
        raise ValueError(f"{type(network).__name__} holds no backbone with a step cache (FlagDiT / MMDiT)")
    caches = [StepCache(interval, warmup) for _ in backbones]
    previous = [b.step_cache for b in backbones]
    for backbone, cache in zip(backbones, caches):
        backbone.step_cache = cache
    try:
        yield caches
    finally:
        for backbone, old in zip(backbones, previous):
            backbone.step_cache = old
