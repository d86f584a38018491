"""``unidit fit|sample|eval shape3d``.

``fit`` trains with LightningCLI from ``fit.yaml`` (every field overridable),
then exports the EMA weights to ``<run>/model`` and writes ``<run>/report``:
metrics.json, one .ply per prompt and samples.png. ``sample`` writes .ply +
.png for prompts (or completes a partial cloud); ``eval`` prints the metric
table of an exported model or a Lightning checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch
from jsonargparse import ArgumentParser
from unidit.apps.task_cli import run_directory, run_fit
from unidit.tasks.shape3d.datamodule import Shape3DData
from unidit.tasks.shape3d.evaluate import (
    Shape3DReport,
    evaluate_shapes,
    format_table,
    slug,
    write_report,
    write_samples,
)
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tokenizers.meshes import load_points
from unidit.training.export import export_task, load_task

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"
MODEL_CLASS, DATA_CLASS, EXTRA_GROUPS = Shape3DTask, Shape3DData, {"report": Shape3DReport}


def fit(argv: list[str]) -> Path:
    cli = run_fit(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, extra_groups=EXTRA_GROUPS)
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    model_dir = export_task(cli.model, run_dir / "model")
    print(f"exported EMA weights to {model_dir}")
    report = Shape3DReport(**cli.config["report"])
    _evaluate_and_write(cli.model, cli.datamodule, report, run_dir / "report")
    return run_dir


def sample(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(prog="unidit sample shape3d", description="Write point clouds (.ply + .png) for prompts.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--prompt", action="append", required=True, help="caption; repeat for several")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, default=1, help="clouds per prompt")
    parser.add_argument("--num_points", type=int, default=2048)
    parser.add_argument("--complete", help="partial cloud (.ply/.obj/.off/.npy) whose points stay fixed")
    parser.add_argument("--known_points", type=int, default=1024, help="points read from --complete")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sampler", default="euler", choices=["euler", "heun", "midpoint"])
    parser.add_argument("--cfg_scale", type=float, default=2.0)
    parser.add_argument("--cfg_rescale", type=float, default=0.7)
    parser.add_argument("--shift", type=float, default=None, help="sampling time shift (default: the training shift)")
    parser.add_argument("--cache_interval", type=int, default=1, help="FORA step caching: recompute blocks every N calls")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prompts = [p.strip() for p in args.prompt]
    for p in prompts:
        if not p:
            raise SystemExit("unidit sample shape3d: --prompt must not be empty")
    task = load_task(Shape3DTask, args.ckpt)
    captions = [p for p in prompts for _ in range(args.num)]
    partial = None
    if args.complete:
        known = load_points(args.complete, args.known_points, seed=args.seed)  # (M, 3)
        partial = torch.from_numpy(known)[None].expand(len(captions), -1, -1)
    clouds = task.sample_clouds(
        captions,
        args.num_points,
        steps=args.steps,
        sampler=args.sampler,
        cfg_scale=args.cfg_scale,
        cfg_rescale=args.cfg_rescale,
        partial=partial,
        seed=args.seed,
        shift=args.shift,
        cache_interval=args.cache_interval,
    ).cpu().numpy()
    out = Path(args.out)
    names = [f"{i:02d}_{slug(c)}" for i, c in enumerate(captions)]
    write_samples(out, list(clouds), captions, names)
    print(f"wrote {len(clouds)} clouds (.ply + .png) and samples.png to {out}")
    return out


def evaluate(argv: list[str]) -> dict:
    parser = ArgumentParser(prog="unidit eval shape3d", description="Print the 3D task's metric table.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--out", type=Optional[str], default=None, help="also write metrics.json, .ply files and samples.png here")
    parser.add_class_arguments(Shape3DData, "data")
    parser.add_class_arguments(Shape3DReport, "report")
    config = parser.instantiate_classes(parser.parse_args(argv))
    task = load_task(Shape3DTask, config.ckpt)
    return _evaluate_and_write(task, config.data, config.report, Path(config.out) if config.out else None)


def _evaluate_and_write(task, data: Shape3DData, report: Shape3DReport, out: Path | None) -> dict:
    data.setup("test")
    task.eval()
    metrics, generated, captions, labels = evaluate_shapes(task, data.splits, report, cache_dir=data.hparams.cache_dir)
    print(format_table(metrics))
    if out is not None:
        write_report(out, metrics, generated, captions, labels=labels, num_written=report.num_written)
        print(f"wrote metrics.json, .ply samples and samples.png to {out}")
    return metrics

