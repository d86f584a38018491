"""What each CPU speed-up of the task defaults is worth: one training step with and without it.

The default CPU path has three pieces that the budget issue added (see
``docs/architecture.md``, "CPU speed"):

- ``condition_rows`` finds the distinct (sample, time) pairs with two 1-D
  ``torch.unique`` calls instead of a row-wise ``unique(dim=0)``;
- short bf16 sequences on CPU use attention written out as two matmuls and a
  softmax (``unidit.backbones.attention_mask.explicit_attention``) instead of
  the fused SDPA kernel, whose backward is slower there;
- the defaults train under bf16 autocast where the CPU has native bf16;
- with ``--compiled``, a last column compiles the backbone blocks for training
  (``compile_blocks``, :mod:`unidit.backbones.training_blocks`) on top of the
  rest, and "compile s" is its first step, compilation included.

This script times each task default's training step (``benchmarks/task_defaults.py``'s
model, batch and optimizer) with everything on, and with one piece taken back
at a time, interleaved in one process so that machine drift hits every column
alike. Without native bf16 the bf16 columns are skipped (``unidit fit`` trains
in fp32 there).

    uv run python benchmarks/cpu_step.py [--apps shape3d,t2a,t2v,motion] [--rounds 6] [--threads 2] [--compiled]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from unidit.apps.task_cli import native_cpu_bf16
from unidit.backbones import attention_mask, conditioning, training_blocks
from unidit.backbones.conditioning import ConditionRows
from unidit.training.step_timer import cpu_model

from task_defaults import build_default, training_step


def rowwise_condition_rows(t: torch.Tensor, sample_of_token: torch.Tensor) -> ConditionRows:
    """The previous pair finder: one float64 (sample, time) row per token through ``unique(dim=0)``."""
    keys = torch.stack([sample_of_token.reshape(-1).to(torch.float64), t.reshape(-1).to(torch.float64)], dim=1)
    pairs, index = torch.unique(keys, dim=0, return_inverse=True)  # (U, 2), (B·L,)
    return ConditionRows(pairs[:, 1].to(t.dtype), pairs[:, 0].long(), index)


@contextmanager
def patched(module, name: str, value):
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def time_app(name: str, scratch: Path, rounds: int, compiled: bool) -> dict[str, float]:
    default = build_default(name, scratch)
    bf16 = dataclasses.replace(default, precision="bf16-mixed")
    fp32 = dataclasses.replace(default, precision="32-true")
    best = bf16 if native_cpu_bf16() else fp32
    backbone = default.task.denoiser.backbone
    eager = lambda: training_blocks.eager_blocks(backbone)  # noqa: E731
    variants = {f"all on ({'bf16' if native_cpu_bf16() else 'fp32'})": (training_step(best, name), eager)}
    if native_cpu_bf16():
        variants["fused SDPA"] = (training_step(bf16, name), lambda: patched(
            attention_mask, "explicit_attention_pays", lambda q, k: False), eager)
        variants["row-wise unique"] = (training_step(bf16, name), lambda: patched(
            conditioning, "condition_rows", rowwise_condition_rows), eager)
        variants["fp32"] = (training_step(fp32, name), eager)
    if compiled:
        training_blocks.compile_training_blocks(backbone)
        variants["+ compiled blocks"] = (training_step(best, name),)
    times: dict[str, list[float]] = {key: [] for key in variants}
    for index in range(rounds + 1):
        for key, (step, *contexts) in variants.items():
            with ExitStack() as stack:
                for context in contexts:
                    stack.enter_context(context())
                seconds = step()
            if index:  # the first round fills the caption cache (and compiles)
                times[key].append(seconds)
            elif key == "+ compiled blocks":
                compile_seconds = seconds
    medians = {key: statistics.median(values) for key, values in times.items()}
    if compiled:
        medians["compile s"] = compile_seconds
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="shape3d,t2a,t2v,motion")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compiled", action="store_true",
                        help="add a column with the blocks compiled for training (about a minute per task)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"{cpu_model()}, torch {torch.__version__}; median of {args.rounds} interleaved rounds, s/step\n")
    header = None
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.apps.split(","):
            median = time_app(name, Path(scratch), args.rounds, args.compiled)
            if header is None:
                header = list(median)
                print("| task | " + " | ".join(header) + " |\n|---|" + "---|" * len(header))
            first = median[header[0]]
            cells = [f"{median[key]:.1f}" if key == "compile s" else f"{median[key]:.3f}"
                     + ("" if key == header[0] else f" ({median[key] / first:.2f}x)") for key in header]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
