"""``unidit fit|sample|eval t2a``.

``fit`` needs an audio VAE: ``--model.vae <folder>`` (an export of ``unidit fit
audio-vae``, also read from a ``--config`` YAML).  Without one it first trains
the VAE with that app's default config and uses ``<vae run>/model``.  It then
trains the latent DiT with LightningCLI from ``fit.yaml``, exports the EMA weights
to ``<run>/model`` and writes ``<run>/report``: metrics.json, a wav and a
spectrogram PNG per sample, and overview.png.  ``sample`` writes clips for
prompts (several prompts and durations in one batch), regenerates a span of a
clip (``--inpaint``) or extends one (``--continue``); ``eval`` prints the
metric table (``--report.sweep true`` adds the guidance sweep).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import yaml
from jsonargparse import ArgumentParser
from unidit.apps.task_cli import run_directory, run_fit
from unidit.tasks.t2a.datamodule import T2AData
from unidit.tasks.t2a.evaluate import T2AReport, evaluate_t2a, format_table, write_report
from unidit.tasks.t2a.media import write_clips
from unidit.tasks.t2a.task import Inpaint, T2ATask
from unidit.tokenizers.audio_io import load_audio
from unidit.training.export import export_task, load_task

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"
MODEL_CLASS, DATA_CLASS, EXTRA_GROUPS = T2ATask, T2AData, {"report": T2AReport}
VAE_OPTIONS = ("--model.vae", "--data.vae_dir")


def fit(argv: list[str]) -> Path:
    argv = list(argv)
    if given_vae(argv) is None:
        from unidit.apps.audio_vae.app import fit as fit_audio_vae

        print("no --model.vae given: training the audio VAE first (unidit fit audio-vae)", flush=True)
        vae_run = fit_audio_vae([])
        argv.append(f"--model.vae={vae_run / 'model'}")
    cli = run_fit(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, extra_groups=EXTRA_GROUPS)
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    model_dir = export_task(cli.model, run_dir / "model")
    print(f"exported EMA weights to {model_dir} (audio VAE: {cli.model.hparams.vae})")
    report = T2AReport(**cli.config["report"])
    _evaluate_and_write(cli.model, cli.datamodule, report, run_dir / "report")
    return run_dir


def given_vae(argv: list[str]) -> str | None:
    """The VAE folder named by ``--model.vae`` / ``--data.vae_dir`` (``X`` or ``=X``) or a ``--config`` YAML."""
    for index, arg in enumerate(argv):
        for option in VAE_OPTIONS:
            if arg == option and index + 1 < len(argv) and argv[index + 1] not in ("null", "None"):
                return argv[index + 1]
            if arg.startswith(option + "=") and arg.split("=", 1)[1] not in ("", "null", "None"):
                return arg.split("=", 1)[1]
    for index, arg in enumerate(argv):
        path = argv[index + 1] if arg == "--config" and index + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--config=") else None)
        if path and Path(path).is_file():
            config = yaml.safe_load(Path(path).read_text()) or {}
            for group, key in (("model", "vae"), ("data", "vae_dir")):
                section = config.get(group) or {}
                if isinstance(section, dict) and section.get(key):
                    return str(section[key])
    return None


def sample(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(
        prog="unidit sample t2a", description="Write sound clips (.wav + spectrogram .png) for prompts."
    )
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--prompt", action="append", required=True, help="caption; repeat for several")
    parser.add_argument("--seconds", type=float, action="append",
                        help="duration of new audio: once for all prompts or once per prompt (default 3)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--inpaint", help="audio file whose span [--start, --end) is regenerated")
    parser.add_argument("--start", type=float, help="in-painting: span start (s)")
    parser.add_argument("--end", type=float, help="in-painting: span end (s)")
    parser.add_argument("--continue", dest="continuation", help="audio file to extend by --seconds")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--sampler", default="euler", choices=["euler", "heun", "midpoint"])
    parser.add_argument("--cfg_scale", type=float, default=5.0)
    parser.add_argument("--cfg_rescale", type=float, default=0.5, help="EzAudio guidance rescale phi (0 = plain CFG)")
    parser.add_argument("--shift", type=float, default=None, help="sampling time shift (default: the training shift)")
    parser.add_argument("--cache_interval", type=int, default=1,
                        help="FORA step caching: recompute blocks every N calls")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prompts = [p.strip() for p in args.prompt]
    if not all(prompts):
        raise SystemExit("unidit sample t2a: --prompt must not be empty")
    seconds = args.seconds or [3.0]
    if len(seconds) not in (1, len(prompts)):
        raise SystemExit(
            f"unidit sample t2a: give --seconds once or once per prompt ({len(prompts)}), got {len(seconds)}"
        )
    if args.inpaint and (args.start is None or args.end is None):
        raise SystemExit("unidit sample t2a: --inpaint needs --start and --end (seconds)")
    if args.inpaint and args.continuation:
        raise SystemExit("unidit sample t2a: give --inpaint or --continue, not both")
    task = load_task(T2ATask, args.ckpt)
    rate = task.sample_rate
    inpaint = Inpaint(load_audio(args.inpaint, rate), args.start, args.end) if args.inpaint else None
    continuation = load_audio(args.continuation, rate) if args.continuation else None
    clips = task.sample_audio(
        prompts, seconds[0] if len(seconds) == 1 else seconds, steps=args.steps, sampler=args.sampler,
        cfg_scale=args.cfg_scale, cfg_rescale=args.cfg_rescale, seed=args.seed, inpaint=inpaint,
        continuation=continuation, shift=args.shift, cache_interval=args.cache_interval,
    )
    out = Path(args.out)
    write_clips(out, clips, prompts, rate)
    print(f"wrote {len(clips)} clips (.wav + spectrogram .png) and overview.png to {out}")
    return out


def evaluate(argv: list[str]) -> dict:
    parser = ArgumentParser(prog="unidit eval t2a", description="Print the t2a metric table.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--out", type=Optional[str], default=None, help="also write metrics.json, wavs and PNGs here")
    parser.add_class_arguments(T2AData, "data")
    parser.add_class_arguments(T2AReport, "report")
    config = parser.instantiate_classes(parser.parse_args(argv))
    task = load_task(T2ATask, config.ckpt)
    config.data.attach_vae(task.require_vae())
    return _evaluate_and_write(task, config.data, config.report, Path(config.out) if config.out else None)


def _evaluate_and_write(task: T2ATask, data: T2AData, report: T2AReport, out: Path | None) -> dict:
    task.eval()
    result = evaluate_t2a(task, data.load_clips(), report, data_seed=data.hparams.seed,
                          cache_dir=data.hparams.cache_dir)
    print(format_table(result.metrics))
    if out is not None:
        write_report(out, result, num_written=report.num_written)
        print(f"wrote metrics.json, wav samples and spectrogram PNGs to {out}")
    return result.metrics
