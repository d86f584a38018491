"""Reading a real data set where some entries may be broken: stop at the first, or count and skip them.

A corrupt clip, a missing mesh, an empty caption: by default the first bad
entry stops loading with its own error (which names the file or row and what
was expected). With ``skip_bad_samples`` every bad entry is skipped instead,
and the reasons are printed once, all together, so a few broken files in a
large folder cost a line each rather than the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from tqdm.auto import tqdm

Item = TypeVar("Item")
Sample = TypeVar("Sample")


def read_or_skip(
    items: Iterable[Item],
    read: Callable[[Item], Sample],
    source: str,
    skip_bad_samples: bool,
    total: int | None = None,
    what: str = "entries",
    progress_from: int = 50,
) -> tuple[list[Sample], list[str]]:
    """``read(item)`` for every item; returns the samples read and the reasons for those skipped.

    ``read`` raises ``OSError`` or ``ValueError`` for a bad entry. Without
    ``skip_bad_samples`` that error stops the loading; with it the entry is
    skipped and its reason kept. The skipped reasons are printed under a line
    naming ``source``. A progress bar shows when there are at least
    ``progress_from`` items. Raises ``ValueError`` when nothing is usable.
    """
    items = list(items)
    total = len(items) if total is None else total
    samples, skipped = [], []
    for item in tqdm(items, total=total, desc=f"reading {source}", disable=total < progress_from):
        try:
            samples.append(read(item))
        except (OSError, ValueError) as error:
            if not skip_bad_samples:
                raise
            skipped.append(str(error))
    if skipped:
        print(f"{source}: skipped {len(skipped)} bad sample(s) of {total}:", flush=True)
        for reason in skipped:
            print(f"  {reason}", flush=True)
    if not samples:
        raise ValueError(f"{source}: none of the {total} {what} is usable (all {len(skipped)} skipped)")
    return samples, skipped
