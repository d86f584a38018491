"""``unidit fit|sample|eval shape3d``: text-to-3D point clouds (DiT-3D on the shared backbone).

``fit`` trains from ``fit.yaml``, exports ``<run>/model`` and writes
``<run>/report`` (metrics.json, one .ply + .png per prompt, samples.png);
``sample`` writes clouds for prompts (in the training frame: shapes within
about ±1) or completes a partial cloud given in any units (normalised into the
training frame per shape, completed, and written back in the input's units);
``eval`` prints the metric table of a checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from unidit.apps.arguments import input_file, positive_int
from unidit.apps.task_app import TaskApp
from unidit.tasks.shape3d.datamodule import Shape3DData
from unidit.tasks.shape3d.evaluate import Shape3DReport, evaluate_shapes, write_samples
from unidit.tasks.shape3d.frame import complete_in_input_frame
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tokenizers.meshes import load_points
from unidit.training.report import sample_names
from unidit.training.sampling import SamplingOptions, generate_in_batches


class Shape3DApp(TaskApp, name="shape3d", task=Shape3DTask, data=Shape3DData, report=Shape3DReport,
                 media="point clouds (.ply + .png)"):
    def measure(self, task, data: Shape3DData, report: Shape3DReport):
        data.setup("test")
        return evaluate_shapes(task, data.splits, report, cache_dir=data.hparams.cache_dir)

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("shape3d")
        group.add_argument("--num_points", type=positive_int, default=2048, help="points per cloud")
        group.add_argument("--complete", help="partial cloud (.ply/.obj/.off/.stl/.npy) whose points stay fixed")
        group.add_argument("--known_points", type=positive_int, default=1024, help="points read from --complete")

    def write_samples(self, task, args, captions: list[str], options: SamplingOptions, batch_size: int,
                      out: Path) -> str:
        def generate(partial: np.ndarray | None) -> np.ndarray:  # (B, N, 3) in the training frame
            known = None if partial is None else torch.from_numpy(partial)[None]  # (1, M, 3)
            batches = generate_in_batches(
                lambda part, opts: task.sample_clouds(
                    captions[part], args.num_points, options=opts,
                    partial=None if known is None else known.expand(len(captions[part]), -1, -1),
                ).cpu(),
                len(captions), options, batch_size,
            )
            return torch.cat(batches).numpy()

        if args.complete:
            if args.known_points >= args.num_points:
                raise ValueError(f"--known_points {args.known_points} must be below --num_points {args.num_points}")
            given = load_points(input_file(args.complete, "--complete"), args.known_points, seed=options.seed)
            clouds = complete_in_input_frame(generate, given)  # (B, N, 3) in the input's own units
        else:
            clouds = generate(None)
        write_samples(out, list(clouds), captions, sample_names(captions))
        return f"wrote {len(clouds)} clouds (.ply + .png) and samples.png to {out}"


APP = Shape3DApp()
