"""``unidit fit|sample|eval t2v``.

``fit`` trains with LightningCLI from ``fit.yaml`` (every field overridable).
Without ``--model.vae`` it first trains the default causal video VAE with
``unidit fit video-vae`` (extra options through ``--video_vae.args``) and uses
its ``<run>/model``.  The clips are encoded once, the DiT trains on latents,
then the EMA weights are exported to ``<run>/model`` (with a copy of the VAE
in ``<run>/model/vae``, so the folder is self-contained) and ``<run>/report``
gets metrics.json, an .mp4 and a frame-strip .png per sample and samples.png.
``sample`` writes clips for prompts, optionally from a first frame
(``--image``) or continuing a clip (``--extend``); ``eval`` prints the table.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from jsonargparse import ArgumentParser
from lightning.pytorch.utilities.exceptions import SIGTERMException
from unidit.apps.task_cli import build_cli, resolve_ckpt_path, run_directory
from unidit.apps.video_vae.app import fit as fit_video_vae
from unidit.tasks.t2v.datamodule import T2VData
from unidit.tasks.t2v.evaluate import T2VReport, evaluate_videos, format_table, slug, write_report
from unidit.tasks.t2v.media import write_clips
from unidit.tasks.t2v.task import VAE_FOLDER, T2VTask, load_t2v_task
from unidit.tokenizers.video_io import read_video
from unidit.training.checkpointing import Preempted
from unidit.training.export import export_task

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"


@dataclass
class VideoVAEFit:
    """How ``unidit fit t2v`` trains its VAE when ``--model.vae`` is not given.

    Attributes:
        args: extra ``unidit fit video-vae`` options, e.g. ``["--trainer.max_steps", "400"]``.
    """

    args: list[str] | None = None


MODEL_CLASS, DATA_CLASS = T2VTask, T2VData
EXTRA_GROUPS = {"report": T2VReport, "video_vae": VideoVAEFit}


def fit(argv: list[str]) -> Path:
    cli = build_cli(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, EXTRA_GROUPS)
    ckpt_path = resolve_ckpt_path(cli.trainer, cli.config.get("ckpt_path"))
    if cli.model.vae_path is None:
        vae_dir = _vae_of_checkpoint(ckpt_path) or _train_vae(cli)
        cli.model.vae_path = str(vae_dir)
        cli.model.hparams["vae"] = str(vae_dir)  # recorded in checkpoints and the export
    try:
        cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:  # SIGTERM outside a training batch; PreemptionCheckpoint wrote last.ckpt
        raise Preempted(f"stopped by SIGTERM at step {cli.trainer.global_step}") from None
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    model_dir = export_task(cli.model, run_dir / "model")
    shutil.copytree(cli.model.vae_path, model_dir / VAE_FOLDER, dirs_exist_ok=True)
    print(f"exported EMA weights (and the VAE in {VAE_FOLDER}/) to {model_dir}")
    report = T2VReport(**cli.config["report"])
    _evaluate_and_write(cli.model.eval(), cli.datamodule, report, run_dir / "report")
    return run_dir


def _train_vae(cli) -> Path:
    """Train the default video VAE beside this run's logs; returns its exported ``<run>/model``."""
    logger = cli.trainer.logger
    save_dir = Path(getattr(logger, "save_dir", None) or cli.trainer.default_root_dir)
    data = cli.datamodule.hparams
    argv = ["--trainer.default_root_dir", str(save_dir / "video_vae"), "--trainer.logger.init_args.save_dir",
            str(save_dir), "--data.seed", str(data.seed)]
    if data.cache_dir is not None:
        argv += ["--data.cache_dir", str(data.cache_dir)]
    argv += list(cli.config["video_vae"].get("args") or [])
    print(f"no --model.vae given: training a video VAE first (unidit fit video-vae {' '.join(argv)})", flush=True)
    return (Path(fit_video_vae(argv)) / "model").resolve()


def _vae_of_checkpoint(ckpt_path: str | None) -> str | None:
    """The VAE a resumed run was trained with (its checkpoint's ``vae`` hyper-parameter)."""
    if ckpt_path is None or not Path(ckpt_path).is_file():
        return None
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read the VAE path from {ckpt_path} ({error}); pass --model.vae") from error
    return (checkpoint.get("hyper_parameters") or {}).get("vae")


def sample(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(prog="unidit sample t2v",
                                     description="Write clips (.mp4 + frame strip .png) for prompts.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--prompt", action="append", required=True, help="caption; repeat for several")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, default=1, help="clips per prompt")
    parser.add_argument("--image", help="first frame (png/jpg, or a video's first frame): image-to-video")
    parser.add_argument("--extend", help="video whose first frames are continued")
    parser.add_argument("--extend_frames", type=int, default=None,
                        help="frames of --extend kept (1 + k*temporal compression; default about half the output)")
    parser.add_argument("--num_frames", type=int, default=17, help="frames per clip (1 + k*temporal compression)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sampler", default="euler", choices=["euler", "heun", "midpoint"])
    parser.add_argument("--cfg_scale", type=float, default=3.0)
    parser.add_argument("--cfg_rescale", type=float, default=0.7)
    parser.add_argument("--shift", type=float, default=None, help="sampling time shift (default: the training shift)")
    parser.add_argument("--cache_interval", type=int, default=1,
                        help="FORA step caching: recompute blocks every N calls")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the written mp4 files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prompts = [p.strip() for p in args.prompt]
    if not all(prompts):
        raise SystemExit("unidit sample t2v: --prompt must not be empty")
    if args.image and args.extend:
        raise SystemExit("unidit sample t2v: give --image or --extend, not both")
    task = load_t2v_task(args.ckpt)
    height, width = task.frame_size
    options = {}
    if args.image:
        options["image"] = read_video(args.image, num_frames=1, size=(height, width))[0]  # (H, W, 3)
    if args.extend:
        tc = task.vae.temporal_compression
        keep = args.extend_frames or 1 + tc * max(1, (task.latent_frames(args.num_frames) - 1) // 2)
        task.latent_frames(keep)  # a clear error unless keep = 1 + k*tc
        options["extend"] = read_video(args.extend, num_frames=keep, size=(height, width))  # (F0, H, W, 3)
    captions = [p for p in prompts for _ in range(args.num)]
    clips = task.sample_videos(
        captions, num_frames=args.num_frames, steps=args.steps, sampler=args.sampler, cfg_scale=args.cfg_scale,
        cfg_rescale=args.cfg_rescale, shift=args.shift, cache_interval=args.cache_interval, seed=args.seed, **options,
    )
    out = Path(args.out)
    names = [f"{i:02d}_{slug(c)}" for i, c in enumerate(captions)]
    write_clips(out, list(clips), captions, names, fps=args.fps)
    print(f"wrote {len(clips)} clips (.mp4 + frame strip .png) and samples.png to {out}")
    return out


def evaluate(argv: list[str]) -> dict:
    parser = ArgumentParser(prog="unidit eval t2v", description="Print the text-to-video metric table.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--out", type=Optional[str], default=None,
                        help="also write metrics.json, .mp4 and .png files here")
    parser.add_class_arguments(T2VData, "data")
    parser.add_class_arguments(T2VReport, "report")
    config = parser.instantiate_classes(parser.parse_args(argv))
    task = load_t2v_task(config.ckpt)
    return _evaluate_and_write(task, config.data, config.report, Path(config.out) if config.out else None)


def _evaluate_and_write(task: T2VTask, data: T2VData, report: T2VReport, out: Path | None) -> dict:
    task.eval()
    clips = data.load_clips()  # the evaluation needs pixels only: no latents are encoded here
    metrics, generated, captions = evaluate_videos(task, clips, report, seed=data.hparams.seed,
                                                   cache_dir=data.hparams.cache_dir)
    print(format_table(metrics))
    if out is not None:
        write_report(out, metrics, generated, captions, num_written=report.num_written, fps=report.fps)
        print(f"wrote metrics.json, .mp4 samples, frame strips and samples.png to {out}")
    return metrics

