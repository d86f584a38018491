"""Run the metric networks on a fixed number of torch threads.

The recogniser front end, the resampler and Resemblyzer's LSTM are tiny; on a
CPU that other processes share, torch's default of one thread per core makes
them spin-wait (measured: 0.09 s per speaker embedding on one thread against
0.3-10 s on two, on a loaded 2-core machine). The metrics therefore run on
``threads`` torch threads and restore the caller's setting afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Within the block torch uses ``threads`` intra-op threads (None: leave the setting alone)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
