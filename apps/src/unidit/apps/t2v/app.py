"""``unidit fit|sample|eval t2v``: text-to-video, image-to-video and video extension (LTX-Video's recipe).

``fit`` trains from ``fit.yaml``. Without ``--model.vae`` it first trains the
default causal video VAE with ``unidit fit video-vae`` (extra options through
``--video_vae.args``) under the same ``--trainer.default_root_dir``. The clips
are encoded once, the DiT trains on latents, the EMA weights are exported to
``<run>/model`` with a copy of the VAE in ``<run>/model/vae`` (so the folder
is self-contained), and ``<run>/report`` gets metrics.json, an .mp4 and a
frame-strip .png per sample and samples.png. ``sample`` writes clips for
prompts, optionally from a first frame (``--image``) or continuing a clip
(``--extend``); ``eval`` prints the metric table.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unidit.apps.arguments import input_file, positive_int
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import checkpoint_hparam
from unidit.apps.video_vae.app import fit as fit_video_vae
from unidit.tasks.t2v.datamodule import T2VData
from unidit.tasks.t2v.evaluate import T2VReport, evaluate_videos
from unidit.tasks.t2v.media import write_clips
from unidit.tasks.t2v.task import VAE_FOLDER, T2VTask, load_t2v_task
from unidit.tokenizers.video_io import read_video
from unidit.training.report import sample_names
from unidit.training.sampling import SamplingOptions, generate_in_batches


@dataclass
class VideoVAEFit:
    """How ``unidit fit t2v`` trains its VAE when ``--model.vae`` is not given.

    Attributes:
        args: extra ``unidit fit video-vae`` options, e.g. ``["--trainer.max_steps", "400"]``.
    """

    args: list[str] | None = None


class T2VApp(TaskApp, name="t2v", task=T2VTask, data=T2VData, report=T2VReport,
             media="clips (.mp4 + frame strip .png)", extra_groups={"video_vae": VideoVAEFit}):
    def before_fit(self, cli, ckpt_path: str | None) -> None:
        if cli.model.vae_path is None:
            vae_dir = checkpoint_hparam(ckpt_path, "vae") or self._train_vae(cli)
            cli.model.vae_path = str(vae_dir)
            cli.model.hparams["vae"] = str(vae_dir)  # recorded in checkpoints and the export

    def _train_vae(self, cli) -> Path:
        """Train the default video VAE under this run's root folder; returns its exported ``<run>/model``."""
        data = cli.datamodule.hparams
        argv = ["--trainer.default_root_dir", str(cli.trainer.default_root_dir), "--data.seed", str(data.seed)]
        if data.cache_dir is not None:
            argv += ["--data.cache_dir", str(data.cache_dir)]
        argv += list(cli.config["video_vae"].get("args") or [])
        print(f"no --model.vae given: training a video VAE first (unidit fit video-vae {' '.join(argv)})", flush=True)
        return (Path(fit_video_vae(argv)) / "model").resolve()

    def after_export(self, task: T2VTask, model_dir: Path) -> None:
        shutil.copytree(task.vae_path, model_dir / VAE_FOLDER, dirs_exist_ok=True)
        print(f"copied the video VAE into {model_dir / VAE_FOLDER}", flush=True)

    def load(self, path) -> T2VTask:
        return load_t2v_task(path)

    def measure(self, task: T2VTask, data: T2VData, report: T2VReport):
        clips = data.load_clips()  # the evaluation needs pixels only: no latents are encoded here
        return evaluate_videos(task, clips, report, seed=data.hparams.seed, cache_dir=data.hparams.cache_dir)

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("t2v")
        group.add_argument("--image", help="first frame (png/jpg, or a video's first frame): image-to-video")
        group.add_argument("--extend", help="video whose first frames are continued")
        group.add_argument("--extend_frames", type=positive_int, default=None,
                           help="frames of --extend kept (1 + k*temporal compression; default about half the output)")
        group.add_argument("--num_frames", type=positive_int, default=17,
                           help="frames per clip (1 + k*temporal compression)")
        group.add_argument("--fps", type=float, default=8.0, help="frame rate of the written mp4 files")

    def write_samples(self, task: T2VTask, args, captions: list[str], options: SamplingOptions, batch_size: int,
                      out: Path) -> str:
        if args.image and args.extend:
            raise ValueError("give --image or --extend, not both")
        height, width = task.frame_size
        task.latent_frames(args.num_frames)  # a clear error unless num_frames = 1 + k*tc
        condition = {}
        if args.image:
            condition["image"] = read_video(input_file(args.image, "--image"), num_frames=1, size=(height, width))[0]
        if args.extend:
            tc = task.vae.temporal_compression
            keep = args.extend_frames or 1 + tc * max(1, (task.latent_frames(args.num_frames) - 1) // 2)
            task.latent_frames(keep)  # a clear error unless keep = 1 + k*tc
            condition["extend"] = read_video(input_file(args.extend, "--extend"), num_frames=keep,
                                             size=(height, width))  # (F0, H, W, 3)
        batches = generate_in_batches(
            lambda part, opts: task.sample_videos(captions[part], num_frames=args.num_frames, options=opts,
                                                  **condition),
            len(captions), options, batch_size,
        )
        write_clips(out, list(np.concatenate(batches)), captions, sample_names(captions), fps=args.fps)
        return f"wrote {len(captions)} clips (.mp4 + frame strip .png) and samples.png to {out}"


APP = T2VApp()
