"""How many samples of each task a joint step draws: the task-mixing ratio.

Multi-task and multilingual training mix their sources either with fixed
weights or by *temperature sampling* over dataset sizes, ``p_k ∝ n_k^(1/T)``
(Arivazhagan et al. 2019, "Massively Multilingual NMT", §4.2; mT5, Xue et
al. 2021, §2.3): ``T = 1`` samples in proportion to size, larger ``T`` flattens
towards uniform so a small task is not drowned.

A joint step's composition is a pure function of ``(seed, step)``: the tasks of
the ``batch_size`` slots are drawn from the mixing probabilities with a
generator seeded by both, and each task's samples likewise. A resumed run
recomputes exactly the batches it would have drawn, with no sampler state to
save, and ranks under DDP can draw their own mixes by seeding with the rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


def mixing_probabilities(sizes: Mapping[str, int], weights: Mapping[str, float] | None = None,
                         temperature: float | None = None) -> dict[str, float]:
    """Each task's share of a joint batch, summing to 1.

    ``weights`` (fixed, any positive scale) win when given; otherwise temperature
    sampling by dataset size, ``p_k ∝ n_k^(1/temperature)`` (``None`` = uniform).
    """
    names = list(sizes)
    if not names:
        raise ValueError("tasks: expected at least one task to mix")
    if weights is not None:
        missing = sorted(set(names) - set(weights))
        unknown = sorted(set(weights) - set(names))
        if missing or unknown:
            raise ValueError(f"mix weights: missing for {missing}, unknown {unknown}; the tasks are {names}")
        raw = {k: float(weights[k]) for k in names}
    elif temperature is not None:
        if temperature <= 0:
            raise ValueError(f"mix temperature: expected > 0, got {temperature}")
        raw = {k: float(sizes[k]) ** (1.0 / temperature) for k in names}
    else:
        raw = {k: 1.0 for k in names}
    if min(raw.values()) <= 0:
        raise ValueError(f"mix: every task needs a positive weight or size, got {raw}")
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step's draw, seeded by ``(seed, step)`` only."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def step_counts(probabilities: Mapping[str, float], batch_size: int, generator: torch.Generator,
                at_least_one: bool = True) -> dict[str, int]:
    """Samples of each task in one batch of ``batch_size``, drawn slot by slot from ``probabilities``.

    ``at_least_one`` gives every task one slot first (when ``batch_size`` allows),
    so every step carries every task's loss.
    """
    names = list(probabilities)
    counts = dict.fromkeys(names, 0)
    free = batch_size
    if at_least_one and batch_size >= len(names):
        counts = dict.fromkeys(names, 1)
        free -= len(names)
    if free > 0:
        p = torch.tensor([probabilities[k] for k in names], dtype=torch.float64)
        drawn = torch.multinomial(p, free, replacement=True, generator=generator)  # (free,)
        for index in drawn.tolist():
            counts[names[index]] += 1
    return counts


class MixedSteps(Dataset):
    """Item ``i`` is joint batch ``i``: ``{task: collated batch}`` of the task's own samples.

    Args:
        datasets: each task's training dataset (map-style).
        collates: each task's collate function (its own data module's).
        probabilities: the mixing ratio (:func:`mixing_probabilities`).
        batch_size: samples per joint batch, all tasks together.
        steps: batches per epoch.
        seed: the draws of batch ``i`` depend on ``(seed, i)`` only.
    """

    def __init__(self, datasets: Mapping[str, Dataset], collates: Mapping[str, Callable[[list], Any]],
                 probabilities: Mapping[str, float], batch_size: int, steps: int, seed: int = 0) -> None:
        if batch_size < 1 or steps < 1:
            raise ValueError(f"batch_size and steps must be positive, got {batch_size}, {steps}")
        empty = [k for k, d in datasets.items() if len(d) == 0]
        if empty:
            raise ValueError(f"tasks {empty}: empty training set")
        self.datasets, self.collates = dict(datasets), dict(collates)
        self.probabilities = dict(probabilities)
        self.batch_size, self.steps, self.seed = int(batch_size), int(steps), int(seed)

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        """Pass the joint epoch on to the tasks' datasets that draw per epoch (motion's caption choice)."""
        for dataset in self.datasets.values():
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)

    def counts(self, index: int) -> dict[str, int]:
        return step_counts(self.probabilities, self.batch_size, step_generator(self.seed, index))

    def samples(self, index: int) -> dict[str, list]:
        """Batch ``index`` before collation: ``{task: its drawn samples}`` (tasks with no slot left out)."""
        generator = step_generator(self.seed, index)
        counts = step_counts(self.probabilities, self.batch_size, generator)
        drawn = {}
        for name, count in counts.items():
            if count == 0:
                continue
            dataset = self.datasets[name]
            picks = torch.randint(len(dataset), (count,), generator=generator).tolist()
            drawn[name] = [dataset[i] for i in picks]
        return drawn

    def collate(self, drawn: Mapping[str, list]) -> dict[str, Any]:
        """``{task: samples}`` -> ``{task: collated batch}`` with each task's own collate function."""
        return {name: self.collates[name](items) for name, items in drawn.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.collate(self.samples(index))


def unwrap_one(items: Sequence[Any]) -> Any:
    """Collate for a loader of batch size 1 over :class:`MixedSteps`: the joint batch itself."""
    (item,) = items
    return item
