"""A sampler and loader that resume mid-epoch exactly, on one process or many.

The permutation of an epoch is a pure function of ``(seed, epoch)`` (the
``DistributedSampler`` recipe), so it can be recomputed after a restart; the
loader counts the batches it has handed to the training loop and saves that
count in Lightning's checkpoint (Lightning checkpoints loaders that have
``state_dict``/``load_state_dict``), and on resume the sampler skips exactly
those samples of the interrupted epoch.

Because :class:`ResumableSampler` *is* a ``DistributedSampler``, Lightning
does not wrap it under DDP; it shards by the rank it finds (``torch.distributed``
when initialised, else rank 0 of 1), each rank reading a disjoint slice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can skip the samples already consumed in an epoch.

    Args:
        dataset: the dataset (its length; and its ``set_epoch``, if it has one, is called with the epoch).
        seed: permutation seed; epoch ``e`` uses the permutation of ``seed + e``.
        shuffle: permute (training) or keep order.
        drop_last: drop the tail that does not divide evenly over ranks
            (so no sample is repeated across ranks in an epoch).
        num_replicas / rank: default to ``torch.distributed`` (1 / 0 when not initialised).
        lengths: per-sample sequence lengths; given with ``batch_size``, consecutive runs of
            ``batch_size`` indices (the loader's batches) hold samples of similar length, so a
            padded batch wastes little (see :func:`length_bucketed`).
        batch_size: the loader's batch size (used only with ``lengths``).
        bucket_pool: batches sorted together in one pool (with ``lengths``).
    """

    def __init__(
        self,
        dataset: Dataset,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
        bucket_pool: int = 32,
    ) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        if lengths is not None and len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for a dataset of {len(dataset)} samples")
        if batch_size < 1 or bucket_pool < 1:
            raise ValueError(f"batch_size and bucket_pool must be >= 1, got {batch_size}, {bucket_pool}")
        self.lengths = None if lengths is None else [int(n) for n in lengths]
        self.batch_size = batch_size
        self.bucket_pool = bucket_pool
        self._skip_epoch: int | None = None
        self._skip_samples = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch's permutation, and the epoch for a dataset that draws per epoch (its ``set_epoch``:
        a caption choice, a crop), so those draws are a pure function of ``(seed, epoch, index)`` too."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def skip(self, epoch: int, samples: int) -> None:
        """Skip the first ``samples`` indices of this rank the next time ``epoch`` is iterated."""
        if samples < 0:
            raise ValueError(f"samples to skip must be >= 0, got {samples}")
        self._skip_epoch, self._skip_samples = epoch, samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        if self.lengths is not None and self.shuffle:
            rng = random.Random(f"buckets:{self.seed}:{self.epoch}:{self.rank}")
            indices = length_bucketed(indices, self.lengths, self.batch_size, self.bucket_pool, rng)
        if self._skip_epoch == self.epoch:
            indices = indices[self._skip_samples :]
        self._skip_epoch, self._skip_samples = None, 0  # a skip applies once
        return iter(indices)


def length_bucketed(indices: list[int], lengths: Sequence[int], batch_size: int, pool: int,
                    rng: random.Random) -> list[int]:
    """Reorder ``indices`` so that each run of ``batch_size`` holds samples of similar length.

    The shuffled stream is cut into pools of ``pool`` batches; each pool is sorted by length and cut
    into batches; the full batches are shuffled and a short remainder goes last (so the loader's
    consecutive batches stay aligned). The usual length bucketing of speech and text trainers
    (fairseq's and ESPnet's batch samplers); for variable-length data it cuts padded compute.
    """
    batches, remainder = [], []
    span = batch_size * pool
    for start in range(0, len(indices), span):
        chunk = sorted(indices[start : start + span], key=lambda i: lengths[i])
        for j in range(0, len(chunk), batch_size):
            batch = chunk[j : j + batch_size]
            (batches if len(batch) == batch_size else remainder).append(batch)
    rng.shuffle(batches)
    return [i for batch in batches + remainder for i in batch]


class ResumableDataLoader(DataLoader):
    """DataLoader over a :class:`ResumableSampler` whose position survives a checkpoint.

    ``state_dict()`` is ``{"epoch", "batches"}``: the batches of the current
    epoch already handed out (Lightning does not prefetch from sized loaders,
    so that is what the training loop consumed). ``load_state_dict`` makes the
    next iteration of that epoch start right after them.
    """

    def __init__(self, dataset: Dataset, *args: Any, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError(f"ResumableDataLoader needs a ResumableSampler, got {type(self.sampler).__name__}")
        self._epoch = 0
        self._yielded = 0
        self._pending: tuple[int, int] | None = None  # (epoch, batches) to skip on the next iteration

    def __iter__(self):
        # A generator: the body runs at the first ``next``, after Lightning's ``set_epoch``.
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        self._epoch, self._yielded = sampler.epoch, 0
        if self._pending is not None and self._pending[0] == sampler.epoch:
            self._yielded = self._pending[1]
            sampler.skip(sampler.epoch, self._yielded * int(self.batch_size or 1))
        self._pending = None
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self._epoch), "batches": int(self._yielded)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._pending = (int(state["epoch"]), int(state["batches"]))


def resumable_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0,
                     lengths: list[int] | None = None, **loader_options: Any) -> ResumableDataLoader:
    """The training loader every task uses: shuffled by ``(seed, epoch)``, whole batches, resumable.

    ``lengths`` (one per sample) buckets batches by length (see
    :class:`ResumableSampler`). The loader has its own generator, so creating
    an iterator never draws from the global torch RNG. ``loader_options`` go to
    the ``DataLoader`` (e.g. ``collate_fn``).
    """
    sampler = ResumableSampler(dataset, seed=seed, shuffle=True, drop_last=True, lengths=lengths,
                               batch_size=batch_size)
    return ResumableDataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                               num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                               **loader_options)
