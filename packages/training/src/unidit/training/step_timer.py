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


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), with the number of cores torch uses."""
    name = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {torch.get_num_threads()} threads"


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
