"""Transfer between modalities: a task's headline metric against training steps, from scratch and from
another modality's backbone, and with that backbone frozen behind LoRA adapters.

``uv run python benchmarks/transfer.py --task shape3d --source <t2v run>/model`` trains the task
three times with the source run's backbone architecture (a task export's ``config.json``, or a
joint export's ``backbone/``), all else the task's ``fit.yaml``:

- ``scratch``: the backbone initialised at random;
- ``transfer``: the backbone initialised from the source (``--model.init_backbone``; full fine-tuning);
- ``adapters``: the same, frozen, with rank-``--rank`` LoRA adapters (``--model.adapter_rank``);

keeps a checkpoint every ``--every`` steps, measures each with ``unidit eval``'s evaluation (the
EMA weights, the report options of the YAML) and writes ``<out>/transfer.json`` and a markdown
table. DiT-3D (Mo et al. 2023, §4.4) reports that a 3D DiT initialised from 2D ImageNet weights
converges faster; this measures the same question on unidit's own modalities.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from unidit.apps.cli import load_app
from unidit.training.backbone_transfer import shared_backbone_folder
from unidit.training.step_timer import cpu_model

def _motion_r3_ratio(metrics: dict) -> float:
    scores = metrics["text_to_motion"]
    return scores["generated"]["r_precision"][2] / scores["real"]["r_precision"][2]


HEADLINE: dict[str, tuple[str, Callable[[dict], float]]] = {
    "shape3d": ("classifier ratio, generated / real clouds", lambda m: m["faithfulness_ratio"]),
    "t2a": ("event-classifier ratio, generated / real clips", lambda m: m["accuracy_ratio"]),
    "t2v": ("shape-classifier ratio, generated / real clips", lambda m: m["accuracy_ratio"]["shape"]),
    "motion": ("R-precision top-3, generated / real", _motion_r3_ratio),
}
"""The metric each task's README row reports, read from its metrics.json."""


def headline(metrics: dict, task: str) -> float:
    return float(HEADLINE[task][1](metrics))


def checkpoint_config(every: int) -> str:
    """A YAML over the task's fit.yaml that keeps a checkpoint every ``every`` steps."""
    return f"""trainer:
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{every_n_train_steps: {every}, save_top_k: -1, save_last: true, filename: "{{step}}"}}
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args: {{logging_interval: step}}
"""


def fit_arm(args, arm: str, backbone: dict, config: Path) -> Path:
    """Train one arm with the CLI in a subprocess; returns its run folder."""
    root = args.out / arm
    run = root / args.task / "version_0"
    if (run / "report" / "metrics.json").is_file():
        print(f"{arm}: kept {run}", flush=True)
        return run
    command = [sys.executable, "-m", "unidit.apps.cli", "fit", args.task, "--config", str(config),
               "--trainer.default_root_dir", str(root), "--trainer.max_steps", str(args.steps),
               "--trainer.enable_progress_bar", "false", "--model.backbone", json.dumps(backbone)]
    if arm != "scratch":
        command += ["--model.init_backbone", str(args.source)]
    if arm == "adapters":
        command += ["--model.adapter_rank", str(args.rank)]
    print(f"{arm}: {' '.join(command[2:])}", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fit.log", "w") as log:  # the fit's output, also shown here
        process = subprocess.Popen(command + args.extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            print(line, end="", flush=True)
            log.write(line)
    if process.wait() != 0:
        raise SystemExit(f"{arm}: unidit fit failed (exit {process.returncode}); its output is in {root / 'fit.log'}")
    return run


def curve(args, run: Path) -> dict[int, float]:
    """The headline metric at every kept checkpoint and at the end (the run's own report)."""
    app = load_app(args.task)
    points = {args.steps: headline(json.loads((run / "report" / "metrics.json").read_text()), args.task)}
    for ckpt in sorted((run / "checkpoints").glob("step=*.ckpt")):
        step = int(re.search(r"step=(\d+)", ckpt.name).group(1))
        if step in points:
            continue
        cached = ckpt.with_suffix(".metrics.json")
        if not cached.is_file():
            metrics = app.evaluate(["--ckpt", str(ckpt)])
            cached.write_text(json.dumps(metrics, indent=1, default=float))
        points[step] = headline(json.loads(cached.read_text()), args.task)
    return dict(sorted(points.items()))


def steps_to(points: dict[int, float], target: float) -> int | None:
    return next((step for step, value in points.items() if value >= target), None)


def table(args, curves: dict[str, dict[int, float]], backbone: dict, parameters: str) -> str:
    steps = sorted({s for points in curves.values() for s in points})
    lines = [f"# Transfer: {args.task} from the backbone of {args.source}", "",
             f"CPU: {cpu_model()}. Backbone {backbone}; {parameters}. Metric: {args.metric}, of the EMA weights "
             f"at each kept checkpoint (the task's `unidit eval` report options).", "",
             f"Regenerate: `uv run python benchmarks/transfer.py --task {args.task} --source <run>/model "
             f"--steps {args.steps} --every {args.every} --rank {args.rank} --arms {args.arms}"
             + (f" --target {args.target}" if args.target is not None else "") + "`", "",
             "| step | " + " | ".join(curves) + " |", "| --- |" + " --- |" * len(curves)]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{curves[a][step]:.3f}" if step in curves[a] else ""
                                                for a in curves) + " |")
    if args.target is not None:
        lines += ["", f"Steps to reach {args.target:.3f} (the separate default's final value): "
                  + ", ".join(f"{arm} {steps_to(points, args.target) or 'not within ' + str(args.steps)}"
                              for arm, points in curves.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="shape3d", choices=sorted(HEADLINE))
    parser.add_argument("--source", type=Path, required=True, help="the source run's export (<run>/model; a joint run's too)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the adapters arm")
    parser.add_argument("--arms", default="scratch,transfer,adapters")
    parser.add_argument("--target", type=float, default=None, help="the separate default's final metric")
    parser.add_argument("--out", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("extra", nargs="*", help="further `unidit fit` arguments after --")
    args = parser.parse_args()
    args.metric = HEADLINE[args.task][0]
    backbone = source_backbone(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "checkpoints.yaml"
    config.write_text(checkpoint_config(args.every))
    curves = {}
    for arm in args.arms.split(","):
        run = fit_arm(args, arm, backbone, config)
        curves[arm] = curve(args, run)
        print(arm, curves[arm], flush=True)
    parameters = adapter_share(args.out / "adapters" / args.task / "version_0") if "adapters" in curves else ""
    text = table(args, curves, backbone, parameters)
    (args.out / "transfer.json").write_text(json.dumps({"task": args.task, "source": str(args.source),
                                                        "backbone": backbone, "curves": curves}, indent=1))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def source_backbone(source: Path) -> dict:
    """The backbone settings of a task export (its config.json) or a joint export (its backbone/ folder)."""
    shared = shared_backbone_folder(source)
    if shared != source:  # a joint run: the shared backbone's own config
        config = json.loads((shared / "config.json").read_text())
        return {key: config[key] for key in ("arch", "dim", "depth", "num_heads")}
    config_json = source / "config.json"
    if not config_json.is_file():
        raise SystemExit(f"--source {source}: no config.json or joint.json (expected a task or joint export, "
                         "<run>/model)")
    return json.loads(config_json.read_text())["backbone"]


def adapter_share(run: Path) -> str:
    """The adapters arm's LoRA parameters against its frozen backbone, counted in its last checkpoint."""
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]
    lora = sum(v.numel() for k, v in state.items() if k.startswith("denoiser.") and "lora_" in k)
    frozen = sum(v.numel() for k, v in state.items() if k.startswith("denoiser.backbone.") and "lora_" not in k)
    return f"adapters: {lora:,} LoRA parameters ({lora / max(frozen, 1):.1%} of the frozen backbone's {frozen:,})"


if __name__ == "__main__":
    main()
