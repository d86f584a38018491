"""Per-token times: conditioning once per distinct (sample, time) pair against once per token.

Training draws held tokens (``t = 0``: shape3d's completion, t2a's in-painting
and continuation, t2v's first frame and prefix) for some sample of almost every
batch, so the default runs condition per token. The backbones find the
distinct (sample, time) pairs (:func:`unidit.backbones.conditioning.condition_rows`)
and run the timestep MLP and every adaLN linear once per pair. This script
times each task default's training step (``benchmarks/task_defaults.py``'s
model, batch and precision) with that, and with one conditioning row per token
(the same code with the deduplication switched off), interleaved in one process.
The second is slower than the code before the deduplication existed (which
broadcast per-token adaLN tensors without spreading them by index), so the
ratio bounds the saving from above; the before/after against that code is in
``docs/architecture.md`` (``benchmarks/task_defaults.py`` on both commits).

    uv run python benchmarks/condition_rows.py [--apps shape3d,t2a,t2v] [--rounds 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

import torch
from unidit.backbones import conditioning
from unidit.backbones.conditioning import ConditionRows, condition_rows
from unidit.training.step_timer import cpu_model

from task_defaults import build_default, training_step


def one_row_per_token(t: torch.Tensor, sample_of_token: torch.Tensor) -> ConditionRows:
    """No deduplication: every token its own conditioning row."""
    flat = t.reshape(-1)
    return ConditionRows(flat, sample_of_token.reshape(-1).long(), torch.arange(flat.numel(), device=t.device))


def time_app(name: str, scratch: Path, rounds: int) -> tuple[str, dict[str, float]]:
    default = build_default(name, scratch)
    step = training_step(default, name, ema=False)
    variants = {"per pair": condition_rows, "per token": one_row_per_token}
    times = {k: [] for k in variants}
    try:
        for index in range(rounds + 1):
            for key, rows in variants.items():
                conditioning.condition_rows = rows
                seconds = step()
                if index:  # the first round fills the caption cache
                    times[key].append(seconds)
    finally:
        conditioning.condition_rows = condition_rows
    return default.precision, {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="shape3d,t2a,t2v")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"{cpu_model()}, torch {torch.__version__}; {args.rounds} interleaved rounds\n")
    print("| task | precision | s/step per pair | s/step per token | speed-up |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.apps.split(","):
            precision, median = time_app(name, Path(scratch), args.rounds)
            print(f"| {name} | {precision} | {median['per pair']:.3f} | {median['per token']:.3f} | "
                  f"{median['per token'] / median['per pair']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
