"""How fast a run trained, and where: seconds per step, precision and the CPU model.

Timings are only comparable on the same processor (the same defaults run
twice as long on a 2.0 GHz Xeon as on an AMD EPYC with the same matmul rate),
so every ``unidit fit`` ends by naming the processor beside its step time.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl
import torch


def cpu_model(with_threads: bool = True) -> str:
    """The processor as a person can compare it: model name, family/model numbers, widest vector unit, threads.

    Virtual machines often report a bare "AMD EPYC": two such CPUs can differ
    by a factor of two per step (a Zen 1 EPYC with AVX2 against a Zen 4 with
    AVX512-BF16), so the family and model numbers and the widest matrix/vector
    extension are named too.
    """
    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if not key:
                break  # the first processor's block is enough
            fields.setdefault(key, value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    isa = next((label for flag, label in (("amx_tile", "AMX"), ("avx512_bf16", "AVX512-BF16"),
                                          ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    details = [f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else None, isa]
    described = ", ".join(d for d in details if d)
    described = f"{name} ({described})" if described else name
    return f"{described}, {torch.get_num_threads()} threads" if with_threads else described


class StepTimer(pl.Callback):
    """Wall time of every training step (data loading excluded), for the end-of-run summary."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def summary(self, trainer: pl.Trainer) -> str:
        """One line: steps, median (and first-step) seconds per step, precision, device and CPU."""
        device = "cpu" if trainer.strategy.root_device.type == "cpu" else str(trainer.strategy.root_device)
        if torch.cuda.is_available() and device != "cpu":
            device = f"{device} ({torch.cuda.get_device_name(trainer.strategy.root_device)})"
        if not self.seconds:
            return f"trained no steps; precision {trainer.precision}; {device}; {cpu_model()}"
        steady = self.seconds[1:] or self.seconds  # the first step also pays for warm-up
        return (
            f"trained {len(self.seconds)} steps: {statistics.median(steady):.3f} s/step (median; first "
            f"{self.seconds[0]:.2f} s); precision {trainer.precision}; {device}; {cpu_model()}"
        )
