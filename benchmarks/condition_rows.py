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
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml
from unidit.apps.cli import load_app
from unidit.apps.task_cli import native_cpu_bf16
from unidit.backbones import conditioning
from unidit.backbones.conditioning import ConditionRows, condition_rows
from unidit.training.step_timer import cpu_model

from task_defaults import batch_for, vae_folder, yaml_sections


def one_row_per_token(t: torch.Tensor, sample_of_token: torch.Tensor) -> ConditionRows:
    """No deduplication: every token its own conditioning row."""
    flat = t.reshape(-1)
    return ConditionRows(flat, sample_of_token.reshape(-1).long(), torch.arange(flat.numel(), device=t.device))


def time_app(name: str, scratch: Path, rounds: int) -> tuple[str, dict[str, float]]:
    app = load_app(name)
    trainer, model, _ = yaml_sections(app)
    precision = str(trainer.get("precision", "32-true"))
    if precision.startswith("bf16") and not native_cpu_bf16():
        precision = "32-true"
    model = {k: v for k, v in model.items() if k != "vae"}
    vae = vae_folder(name, scratch)
    torch.manual_seed(0)
    task = app.task_class(**model, **({"vae": vae} if vae else {}))
    batch_size = int((yaml.safe_load(app.config.read_text()).get("data") or {}).get("batch_size", 32))
    batch = batch_for(name, task, batch_size, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=1e-4, fused=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision.startswith("bf16") else nullcontext()
    task.train()

    def step() -> float:
        start = time.perf_counter()
        with autocast:
            loss = task.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

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
    return precision, {k: statistics.median(v) for k, v in times.items()}


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
