"""Joint training throughput: one mixed-modality varlen row against the tasks one after another, padded.

The joint model of ``unidit fit joint`` (the shared backbone and each task's
parts sized as in ``apps/src/unidit/apps/joint/fit.yaml``) takes one training
step on a batch holding samples of every task, two ways, interleaved in one
process:

* mixed: the joint step of ``unidit fit joint`` (``JointTask.joint_losses``):
  every task's samples laid end to end in one varlen row, one backbone call,
  one backward;
* one after another: each task's own batch through its own part in its own
  layout (t2a's clips and motion's code sequences padded to the longest, PAD
  slots hidden by the key mask), one forward and backward per task, as
  single-task runs would.

Both draw the same targets (flow targets; motion's masked codes) and compute the
same per-sample loss. Tokens/s counts real tokens only (no PAD slots). The batch
is synthetic with the default tasks' real shapes: 2,048-point clouds, 2-5 s
audio latents (16 x 50 frames/s), 3 x 8 x 8 video latents of 16 channels, and
5-49 motion codes (1-10 s at 4 frames a code, 20 fps) of a 256-code VQ-VAE.

With ``--fresh`` every round draws a new batch (its own mix, lengths and so kernel
shapes), as every step of a fit does; without it every round repeats one batch.
On CPU the difference matters in bf16, where oneDNN builds a kernel per new
matrix shape (``unidit.backbones.varlen``).

    uv run python benchmarks/joint_throughput.py [--rounds 10] [--precision fp32|bf16] [--fresh] [--tasks shape3d,t2a,t2v]

writes ``benchmarks/JOINT.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml
from unidit.apps.joint.task import JointTask
from unidit.training.joint.mixing import step_counts, step_generator
from unidit.training.masked_task import MaskedDiffusionTask
from unidit.training.step_timer import cpu_model

from harness import Runtime, mib

FIT_YAML = Path(__file__).parents[1] / "apps/src/unidit/apps/joint/fit.yaml"
OUT = Path(__file__).with_name("JOINT.md")
CAPTIONS = ["a large red cube", "a dog barks twice", "a blue ball moves left", "rain on a tin roof"]


def default_joint(tasks: str | None = None) -> tuple[JointTask, int]:
    """The joint model of the default ``fit.yaml`` (no tokenizers: the batch is latents) and its batch size;
    ``tasks`` (comma-separated) replaces the YAML's tasks."""
    config = yaml.safe_load(FIT_YAML.read_text())
    model = config["model"]
    torch.manual_seed(0)
    joint = JointTask(tasks=tasks or model["tasks"], task_options=model["task_options"], preset=model["preset"],
                      backbone=model["backbone"], caption_dropout=0.0)
    for task in joint.subtasks.values():
        if isinstance(task, MaskedDiffusionTask):  # flat code statistics for the priority schedule
            task.set_code_counts(torch.ones(task.hparams.codebook_size))
    return joint.train(), int(config["data"]["batch_size"])


def mixed_batch(names: list[str], batch_size: int, seed: int = 0) -> dict[str, dict]:
    """A joint batch drawn by the default (uniform) mixing, each task's samples in its own batch format."""
    counts = step_counts({n: 1.0 / len(names) for n in names}, batch_size, step_generator(seed, 0))
    g = torch.Generator().manual_seed(seed)
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch_size)]
    makers = {
        "shape3d": lambda n: {"points": torch.nn.functional.normalize(torch.randn(n, 2048, 3, generator=g), dim=-1),
                              "caption": captions[:n]},
        "t2a": lambda n: {"latents": [torch.randn(16, int(torch.randint(100, 251, (1,), generator=g)), generator=g)
                                      for _ in range(n)], "captions": captions[:n]},  # 2-5 s at 50 frames/s
        "t2v": lambda n: {"latents": torch.randn(n, 16, 3, 8, 8, generator=g), "caption": captions[:n]},
        "motion": lambda n: {"codes": [torch.randint(256, (int(torch.randint(5, 50, (1,), generator=g)),), generator=g)
                                       for _ in range(n)], "captions": captions[:n]},
    }
    return {name: makers[name](count) for name, count in counts.items() if count}


def steps(joint: JointTask, batch: dict[str, dict]):
    """The two training steps over ``batch`` and the real tokens each processes."""
    parts = joint.denoiser

    def mixed():
        errors = joint.joint_losses(batch, drop=False)
        torch.cat(list(errors.values())).mean().backward()
        joint.zero_grad(set_to_none=True)

    def one_after_another():
        total = sum(_count(batch[n]) for n in batch)
        for name in batch:  # each task in its own padded layout, through its own part alone
            inputs, errors_of = joint.task_inputs(name, batch[name], drop=False)
            errors = errors_of(parts.part(name)(*inputs))
            (errors.sum() / total).backward()  # the same mean over the whole batch
        joint.zero_grad(set_to_none=True)

    real = 0
    for name in batch:
        task = joint.subtasks[name]
        if isinstance(task, MaskedDiffusionTask):
            real += int(task.token_inputs(batch[name]).valid.sum())
            continue
        flow_in = task.flow_inputs(batch[name])
        slots = parts.part(name).slots(flow_in.x0, torch.zeros(flow_in.x0.shape[0]))
        real += int(slots.key_mask.sum())
    return {"mixed varlen row": mixed, "one after another, padded": one_after_another}, real


def _count(task_batch: dict) -> int:
    return len(task_batch.get("caption", task_batch.get("captions")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--tasks", help="comma-separated tasks (default: the fit.yaml's)")
    parser.add_argument("--fresh", action="store_true", help="a new batch every round, as in a fit")
    args = parser.parse_args()
    runtime = Runtime(precision=args.precision)
    joint, batch_size = default_joint(args.tasks)
    batch = mixed_batch(joint.task_names, batch_size)
    fns, real = steps(joint, batch)
    times = {k: [] for k in fns}
    tokens = []  # real tokens of each timed round
    with runtime.autocast():
        for fn in fns.values():  # warm-up
            fn()
        memory = {name: runtime.peak_memory(fn) for name, fn in fns.items()}
        for round_index in range(args.rounds):
            if args.fresh:  # a new batch: new mix, new lengths, new kernel shapes
                fns, real = steps(joint, mixed_batch(joint.task_names, batch_size, seed=round_index + 1))
            tokens.append(real)
            for name, fn in fns.items():  # interleaved A B A B
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    medians = {k: statistics.median(v) for k, v in times.items()}
    rates = {k: sum(tokens) / sum(v) for k, v in times.items()}  # real tokens over time, all rounds
    base = rates["one after another, padded"]
    counts = {n: _count(b) for n, b in batch.items()}
    what = (f"a new batch of {sum(counts.values())} samples every round (drawn by the default mixing, "
            f"{statistics.mean(tokens):,.0f} real latent tokens on average)" if args.fresh else
            f"a batch of {sum(counts.values())} samples ({', '.join(f'{n} {c}' for n, c in counts.items())}), "
            f"{real} real latent tokens, repeated every round")
    lines = [
        "# Joint training throughput",
        "",
        f"`uv run python benchmarks/joint_throughput.py --rounds {args.rounds} --precision {args.precision}"
        f"{' --fresh' if args.fresh else ''}{'' if args.tasks is None else ' --tasks ' + args.tasks}` "
        f"on {cpu_model()}, torch {torch.__version__}.",
        "",
        f"One training step (forward + backward) of the default joint model (`joint/fit.yaml`) on {what}; "
        f"median of {args.rounds} interleaved rounds; tokens/s over all rounds.",
        "",
        "| step | s/step (median, min-max) | real tokens/s | speed-up | peak tensor memory |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in times.items():
        lines.append(f"| {name} | {medians[name]:.3f} ({min(values):.3f}-{max(values):.3f}) | "
                     f"{rates[name]:,.0f} | {rates[name] / base:.2f}x | {mib(memory[name])} MiB |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
