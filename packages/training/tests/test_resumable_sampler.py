"""ResumableSampler / ResumableDataLoader: pure (seed, epoch) order, exact skip, disjoint shards."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset
from unidit.training.resumable_sampler import ResumableDataLoader, ResumableSampler

DATA = TensorDataset(torch.arange(50))
LENGTHS = [(i * 37) % 50 + 1 for i in range(50)]  # a fixed spread of lengths 1..50


def _batches(loader) -> list[list[int]]:
    return [batch[0].tolist() for batch in loader]


def test_order_is_a_function_of_seed_and_epoch():
    a, b = ResumableSampler(DATA, seed=3), ResumableSampler(DATA, seed=3)
    first = list(a)
    assert first == list(b) and sorted(first) == list(range(50))
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(50))
    assert list(ResumableSampler(DATA, seed=4)) != first


@pytest.mark.parametrize("bucketed", [False, True])
@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumes_mid_epoch_exactly(workers, bucketed):
    """Counted in the main process, so worker prefetching does not shift the resume point."""

    def make():
        lengths = LENGTHS if bucketed else None
        sampler = ResumableSampler(DATA, seed=0, lengths=lengths, batch_size=4, bucket_pool=3)
        return ResumableDataLoader(DATA, batch_size=4, drop_last=True, sampler=sampler, num_workers=workers)

    full = make()
    full.sampler.set_epoch(2)
    expected = _batches(full)

    interrupted = make()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    consumed = [next(iterator)[0].tolist() for _ in range(5)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches": 5}

    resumed = make()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    rest = _batches(resumed)
    assert consumed + rest == expected
    assert resumed.state_dict() == {"epoch": 2, "batches": len(expected)}
    resumed.sampler.set_epoch(3)  # the skip applied once: the next epoch is whole
    assert len(_batches(resumed)) == len(expected)


def _spread(batches: list[list[int]]) -> float:
    """Mean (max - min) length within a batch."""
    return sum(max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in batches) / len(batches)


def _bucketed_loader(seed: int = 0, pool: int = 3) -> ResumableDataLoader:
    sampler = ResumableSampler(DATA, seed=seed, lengths=LENGTHS, batch_size=4, bucket_pool=pool)
    return ResumableDataLoader(DATA, batch_size=4, drop_last=True, sampler=sampler)


def test_length_buckets_group_similar_lengths_and_still_cover_the_epoch():
    bucketed, plain = _bucketed_loader(), ResumableDataLoader(DATA, batch_size=4, drop_last=True,
                                                              sampler=ResumableSampler(DATA, seed=0))
    order = list(bucketed.sampler)
    assert sorted(order) == list(range(50))  # a permutation: nothing lost or repeated
    full = _batches(bucketed)
    assert len(full) == 12 and all(len(b) == 4 for b in full)
    assert _spread(full) < 0.5 * _spread(_batches(plain))  # padding to the batch max wastes far less
    assert _batches(_bucketed_loader()) == full  # a function of (seed, epoch)
    bucketed.sampler.set_epoch(1)
    assert _batches(bucketed) != full
    assert _batches(_bucketed_loader(seed=1)) != full


def test_lengths_must_match_the_dataset():
    with pytest.raises(ValueError, match="3 lengths for a dataset of 50"):
        ResumableSampler(DATA, lengths=[1, 2, 3], batch_size=4)


def test_skip_only_applies_to_its_epoch():
    loader = ResumableDataLoader(DATA, batch_size=5, sampler=ResumableSampler(DATA, seed=0))
    loader.load_state_dict({"epoch": 0, "batches": 10})  # epoch 0 was finished
    loader.sampler.set_epoch(1)
    assert len(_batches(loader)) == 10


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_read_disjoint_shards(world):
    shards = [list(ResumableSampler(DATA, seed=1, num_replicas=world, rank=r)) for r in range(world)]
    flat = [i for shard in shards for i in shard]
    assert len(flat) == len(set(flat)) == (50 // world) * world
    assert len({len(s) for s in shards}) == 1


def test_loader_requires_the_resumable_sampler():
    with pytest.raises(TypeError, match="needs a ResumableSampler"):
        ResumableDataLoader(DATA, batch_size=4, shuffle=True)
