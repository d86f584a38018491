"""Timing and memory harness shared by the benchmark cases (CPU or CUDA).

Pairs run interleaved A B A B in one process; warm-up steps are excluded; each
round times one call of each side; the ratio is taken round by round.
On CPU, peak memory is the most tensor memory PyTorch's CPU allocator held
during one extra step, above its level at the start, read from
``torch.profiler``'s memory events (``profile_memory=True``; exact, unlike the
process RSS, which the allocator's caching makes depend on what ran before);
on CUDA it is ``torch.cuda.max_memory_allocated`` above the allocation before
the step.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile


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
            return peak_cpu_allocated(fn)
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


def peak_cpu_allocated(fn: Callable[[], object]) -> int:
    """Peak CPU tensor bytes held while running ``fn`` once, above the level at its start.

    Every allocation and free of PyTorch's CPU allocator is a ``[memory]`` event of the profiler's
    trace, carrying the running total ("Total Allocated"); the peak is the largest total.
    """
    gc.collect()  # what earlier measurements left behind is freed first
    gc.freeze()  # survivors (torch, diffusers, ...) skip later collections: a full one takes ~0.4 s on 2 cores
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not memory:
        return 0
    start = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in memory) - start


@dataclass
class PairResult:
    name_a: str
    name_b: str
    times_a: list[float] = field(default_factory=list)
    times_b: list[float] = field(default_factory=list)
    mem_a: int = 0
    mem_b: int = 0
    reference: list[float] = field(default_factory=list)  # the reference's FLOP/s, one per round (if any)

    @property
    def ratios(self) -> list[float]:  # B / A per round (> 1: A is faster)
        return [b / a for a, b in zip(self.times_a, self.times_b, strict=True)]


def run_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], rounds: int, warmup: int = 1,
             names: tuple[str, str] = ("A", "B"), runtime: Runtime | None = None,
             reference: Callable[[], float] | None = None) -> PairResult:
    """Time ``fn_a`` and ``fn_b`` interleaved A B A B; warm-up excluded.

    ``reference`` (a FLOP/s measurement such as :func:`sustained_matmul_flops_per_s`) runs after each
    round's pair, so a rate divided by it is divided by what the machine did at that moment.
    """
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
        if reference is not None:
            result.reference.append(reference())
    return result


def median_range(xs: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    med = statistics.median(xs) * scale
    return f"{fmt.format(med)} ({fmt.format(min(xs) * scale)}–{fmt.format(max(xs) * scale)})"


def _square_operands(n: int, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = torch.bfloat16 if runtime.precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=runtime.device, dtype=dtype)
    b = torch.randn(n, n, device=runtime.device, dtype=dtype)
    a @ b  # warm-up
    runtime.sync()
    return a, b


def sustained_matmul_flops_per_s(n: int = 1024, seconds: float = 1.0, runtime: Runtime | None = None) -> float:
    """Dense square-matmul FLOP/s in the runtime's device and precision, held for about ``seconds``.

    One timed matmul sizes a run of back-to-back matmuls lasting about ``seconds`` (one sync at its end,
    so a GPU queue never drains between them); total FLOPs over total time: a rate sustained over a
    stretch comparable to a training step, rather than the best single matmul.
    """
    runtime = runtime or Runtime()
    a, b = _square_operands(n, runtime)
    t0 = time.perf_counter()
    a @ b
    runtime.sync()
    count = max(1, round(seconds / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    for _ in range(count):
        a @ b
    runtime.sync()
    return 2 * n**3 * count / (time.perf_counter() - t0)


def matmul_flops_per_s(n: int = 1024, rounds: int = 5, runtime: Runtime | None = None) -> float:
    """Dense square-matmul FLOP/s in the runtime's device and precision, best of ``rounds`` single matmuls."""
    runtime = runtime or Runtime()
    a, b = _square_operands(n, runtime)
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
