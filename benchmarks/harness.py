"""Timing and memory harness shared by the benchmark cases (CPU or CUDA).

Pairs run interleaved A B A B in one process; warm-up steps are excluded; each
round times one call of each side; the ratio is taken round by round.
On CPU, peak memory is the process RSS above its pre-step level (after gc +
malloc_trim), sampled every 0.5 ms by a thread during one extra step; on CUDA
it is ``torch.cuda.max_memory_allocated`` above the allocation before the step.
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
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


@dataclass
class Runtime:
    """Where and in which precision the cases run: ``cpu``/``cuda``, ``fp32`` or ``bf16`` autocast."""

    device: str = "cpu"
    precision: str = "fp32"

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device_type="cuda" if self.cuda else "cpu", dtype=torch.bfloat16)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def with_precision(self, precision: str) -> "Runtime":
        return Runtime(self.device, precision)

    def peak_memory(self, fn: Callable[[], object]) -> int:
        if not self.cuda:
            return peak_rss_delta(fn)
        self.sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        self.sync()
        return torch.cuda.max_memory_allocated() - base

    def describe(self) -> str:
        if self.cuda:
            return f"{torch.cuda.get_device_name()} ({self.precision})"
        return f"CPU ({self.precision})"


# Dense bf16 tensor-core peaks (no sparsity), from the vendors' datasheets, for MFU on GPUs.
GPU_BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def gpu_bf16_peak() -> float | None:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    return next((peak for key, peak in GPU_BF16_PEAK.items() if key in name), None)


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
             names: tuple[str, str] = ("A", "B"), runtime: Runtime | None = None) -> PairResult:
    """Time ``fn_a`` and ``fn_b`` interleaved A B A B; warm-up excluded."""
    runtime = runtime or Runtime()
    result = PairResult(*names)
    for _ in range(warmup):
        fn_a()
        fn_b()
    result.mem_a = runtime.peak_memory(fn_a)
    result.mem_b = runtime.peak_memory(fn_b)
    for _ in range(rounds):
        for fn, times in ((fn_a, result.times_a), (fn_b, result.times_b)):
            runtime.sync()
            t0 = time.perf_counter()
            fn()
            runtime.sync()
            times.append(time.perf_counter() - t0)
    return result


def median_range(xs: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    med = statistics.median(xs) * scale
    return f"{fmt.format(med)} ({fmt.format(min(xs) * scale)}–{fmt.format(max(xs) * scale)})"


def matmul_flops_per_s(n: int = 1024, rounds: int = 5, runtime: Runtime | None = None) -> float:
    """Dense square-matmul FLOP/s in the runtime's device and precision, best of ``rounds``."""
    runtime = runtime or Runtime()
    dtype = torch.bfloat16 if runtime.precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=runtime.device, dtype=dtype)
    b = torch.randn(n, n, device=runtime.device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(rounds):
        runtime.sync()
        t0 = time.perf_counter()
        a @ b
        runtime.sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def mib(x: int) -> str:
    return f"{x / 2**20:.1f}"
