"""``unidit fit|sample|eval t2a``: text-to-audio on audio-VAE latents (EzAudio's recipe).

``fit`` needs an audio VAE: ``--model.vae <folder>`` (an export of ``unidit fit
audio-vae``, also read from a ``--config`` YAML). Without one it first trains
the VAE with that app's default config, under the same
``--trainer.default_root_dir``, and uses ``<vae run>/model``; a resumed run
(``--ckpt_path``) uses the VAE it was trained with. It then trains the latent
DiT from ``fit.yaml``, exports the EMA weights to ``<run>/model`` and writes
``<run>/report``: metrics.json, a wav and a spectrogram PNG per sample, and
overview.png. ``sample`` writes clips for prompts (several prompts and
durations in one batch), regenerates a span of a clip (``--inpaint``) or
extends one (``--continue``); ``eval`` prints the metric table
(``--report.sweep true`` adds the guidance sweep).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from unidit.apps.arguments import UsageError, input_file
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import checkpoint_hparam
from unidit.tasks.t2a.datamodule import T2AData
from unidit.tasks.t2a.evaluate import T2AReport, evaluate_t2a
from unidit.tasks.t2a.media import write_clips
from unidit.tasks.t2a.task import Inpaint, T2ATask
from unidit.tokenizers.audio_io import load_audio
from unidit.training.sampling import SamplingOptions, generate_in_batches

VAE_OPTIONS = ("--model.vae", "--data.vae_dir")


class T2AApp(TaskApp, name="t2a", task=T2ATask, data=T2AData, report=T2AReport,
             media="sound clips (.wav + spectrogram .png)"):
    def prepare_argv(self, argv: list[str]) -> list[str]:
        """Name the audio VAE: the one given, the one a resumed checkpoint used, or one trained now."""
        if given_vae(argv) is not None:
            return argv
        vae = checkpoint_hparam(option_value(argv, "--ckpt_path"), "vae")
        if vae is None:
            from unidit.apps.audio_vae.app import fit as fit_audio_vae

            root = option_value(argv, "--trainer.default_root_dir")
            vae_argv = [] if root is None else ["--trainer.default_root_dir", root]
            print(f"no --model.vae given: training the audio VAE first (unidit fit audio-vae {' '.join(vae_argv)})",
                  flush=True)
            vae = fit_audio_vae(vae_argv) / "model"
        return [*argv, f"--model.vae={vae}"]

    def prepare_eval(self, task: T2ATask, data: T2AData) -> None:
        data.attach_vae(task.require_vae())

    def measure(self, task: T2ATask, data: T2AData, report: T2AReport):
        return evaluate_t2a(task, data.load_clips(), report, data_seed=data.hparams.seed,
                            cache_dir=data.hparams.cache_dir)

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("t2a")
        group.add_argument("--seconds", type=float, action="append",
                           help="duration of new audio: once for all prompts or once per prompt (default 3)")
        group.add_argument("--inpaint", help="audio file whose span [--start, --end) is regenerated")
        group.add_argument("--start", type=float, help="in-painting: span start (s)")
        group.add_argument("--end", type=float, help="in-painting: span end (s)")
        group.add_argument("--continue", dest="continuation", help="audio file to extend by --seconds")

    def write_samples(self, task: T2ATask, args, captions: list[str], options: SamplingOptions, batch_size: int,
                      out: Path) -> str:
        seconds = args.seconds or [3.0]
        if min(seconds) <= 0:
            raise UsageError(f"--seconds: expected durations > 0 s, got {seconds}")
        if len(seconds) not in (1, len(args.prompt)):
            raise UsageError(f"give --seconds once or once per prompt ({len(args.prompt)}), got {len(seconds)}")
        if args.inpaint and (args.start is None or args.end is None):
            raise UsageError("--inpaint needs --start and --end (seconds)")
        if args.inpaint and args.continuation:
            raise UsageError("give --inpaint or --continue, not both")
        per_caption = [s for s in (seconds * len(args.prompt) if len(seconds) == 1 else seconds)
                       for _ in range(args.num)]  # captions repeat each prompt --num times
        rate = task.sample_rate
        inpaint = None
        if args.inpaint:
            inpaint = Inpaint(load_audio(input_file(args.inpaint, "--inpaint"), rate), args.start, args.end)
        continuation = load_audio(input_file(args.continuation, "--continue"), rate) if args.continuation else None
        batches = generate_in_batches(
            lambda part, opts: task.sample_audio(captions[part], per_caption[part], options=opts, inpaint=inpaint,
                                                 continuation=continuation),
            len(captions), options, batch_size,
        )
        clips = [clip for batch in batches for clip in batch]
        write_clips(out, clips, captions, rate)
        return f"wrote {len(clips)} clips (.wav + spectrogram .png) and overview.png to {out}"


def option_value(argv: list[str], option: str) -> str | None:
    """The value of ``option`` in ``argv`` (``--option X`` or ``--option=X``; the last one wins), else None."""
    value = None
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return None if value in (None, "", "null", "None") else value


def given_vae(argv: list[str]) -> str | None:
    """The VAE folder named by ``--model.vae`` / ``--data.vae_dir`` (``X`` or ``=X``) or a ``--config`` YAML."""
    for option in VAE_OPTIONS:
        if (value := option_value(argv, option)) is not None:
            return value
    path = option_value(argv, "--config")
    if path and Path(path).is_file():
        config = yaml.safe_load(Path(path).read_text()) or {}
        for group, key in (("model", "vae"), ("data", "vae_dir")):
            section = config.get(group) or {}
            if isinstance(section, dict) and section.get(key):
                return str(section[key])
    return None


APP = T2AApp()
