"""Timing and memory harness shared by the benchmark cases (CPU, fp32).

Pairs run interleaved A B A B in one process; warm-up steps are excluded; each
round times one call of each side; the ratio is taken round by round.
Peak memory is the process RSS above its pre-step level (after gc +
malloc_trim), sampled every 0.5 ms by a thread during one extra step.
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE")
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_delta(fn: Callable[[], object]) -> int:
    """Peak RSS increase (bytes) while running ``fn`` once."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    base = rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    peak[0] = max(peak[0], rss_bytes())
    return peak[0] - base


@dataclass
class PairResult:
    name_a: str
    name_b: str
    times_a: list[float] = field(default_factory=list)
    times_b: list[float] = field(default_factory=list)
    mem_a: int = 0
    mem_b: int = 0

    @property
    def ratios(self) -> list[float]:  # B / A per round (> 1: A is faster)
        return [b / a for a, b in zip(self.times_a, self.times_b, strict=True)]


def run_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], rounds: int, warmup: int = 1,
             names: tuple[str, str] = ("A", "B")) -> PairResult:
    """Time ``fn_a`` and ``fn_b`` interleaved A B A B; warm-up excluded."""
    result = PairResult(*names)
    for _ in range(warmup):
        fn_a()
        fn_b()
    result.mem_a = peak_rss_delta(fn_a)
    result.mem_b = peak_rss_delta(fn_b)
    for _ in range(rounds):
        for fn, times in ((fn_a, result.times_a), (fn_b, result.times_b)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return result


def median_range(xs: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    med = statistics.median(xs) * scale
    return f"{fmt.format(med)} ({fmt.format(min(xs) * scale)}–{fmt.format(max(xs) * scale)})"


def matmul_flops_per_s(n: int = 1024, rounds: int = 5) -> float:
    """Dense fp32 square-matmul FLOP/s, best of ``rounds``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def mib(x: int) -> str:
    return f"{x / 2**20:.1f}"
