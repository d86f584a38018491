"""``unidit fit|sample|eval motion``: text-to-motion by masked discrete diffusion on motion VQ codes.

``fit`` needs a motion VQ-VAE: ``--model.vqvae <folder>`` (an export of ``unidit fit motion-vq``,
also read from a ``--config`` YAML). Without one it first trains the VQ-VAE with that app's
default config under the same ``--trainer.default_root_dir`` and uses ``<vq run>/model``; a
resumed run (``--ckpt_path``) uses the VQ-VAE it was trained with. ``--model.codebook_size`` is
taken from the VQ-VAE unless given. It then trains the code denoiser from ``fit.yaml``, exports
the EMA weights to ``<run>/model`` and writes ``<run>/report`` (see
:mod:`unidit.tasks.motion.evaluate`). ``sample`` writes motions for prompts (``--seconds`` or
the length predictor), in-betweens a clip (``--inbetween f.npy --start --end``) or continues
one (``--continue f.npy``), each motion as ``.npy`` features and joints, a ``.bvh`` rig and a
stick-figure ``.mp4`` / ``.gif``; ``eval`` prints the metric table (Guo et al.'s FID, R-precision,
MM-distance, diversity and multimodality with the task's learned evaluator).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from unidit.apps.arguments import UsageError, input_file
from unidit.apps.t2a.app import option_value
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import checkpoint_hparam
from unidit.tasks.motion.data import read_array
from unidit.tasks.motion.datamodule import MotionData
from unidit.tasks.motion.evaluate import MotionReport, evaluate_motion
from unidit.tasks.motion.media import write_motions
from unidit.tasks.motion.task import Inbetween, MotionTask, check_features
from unidit.training.masked_task import MaskedSamplingOptions
from unidit.training.sampling import generate_in_batches

VQ_OPTIONS = ("--model.vqvae", "--data.vqvae_dir")


class MotionApp(TaskApp, name="motion", task=MotionTask, data=MotionData, report=MotionReport,
                media="motions (features and joints .npy, .bvh, stick-figure .mp4 / .gif)"):
    # -- the tokenizer ---------------------------------------------------------------------
    def prepare_argv(self, argv: list[str]) -> list[str]:
        """Name the VQ-VAE (given, the resumed checkpoint's, or trained now) and its codebook size."""
        argv = list(argv)
        vq = given_vqvae(argv) or checkpoint_hparam(option_value(argv, "--ckpt_path"), "vqvae")
        if vq is None:
            from unidit.apps.motion_vq.app import fit as fit_motion_vq

            root = option_value(argv, "--trainer.default_root_dir")
            vq_argv = [] if root is None else ["--trainer.default_root_dir", root]
            print(f"no --model.vqvae given: training the motion VQ-VAE first (unidit fit motion-vq "
                  f"{' '.join(vq_argv)})", flush=True)
            vq = fit_motion_vq(vq_argv) / "model"
        if option_value(argv, "--model.vqvae") is None:
            argv.append(f"--model.vqvae={vq}")
        if option_value(argv, "--model.codebook_size") is None:
            argv.append(f"--model.codebook_size={vq_codebook_size(vq)}")
        return argv

    def prepare_eval(self, task: MotionTask, data: MotionData) -> None:
        data.attach_vqvae(task.require_vqvae())

    def measure(self, task: MotionTask, data: MotionData, report: MotionReport):
        splits = data.load_clips(("train", "test"))
        return evaluate_motion(task, splits["train"], splits["test"], report, task.fps, data.hparams.cache_dir)

    # -- sample ------------------------------------------------------------------------------
    sampling_class = MaskedSamplingOptions

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("motion")
        group.add_argument("--seconds", type=float, action="append",
                           help="duration: once for all prompts or once per prompt (default: the length predictor)")
        group.add_argument("--inbetween", help="(T, 263) features .npy whose span [--start, --end) is regenerated")
        group.add_argument("--start", type=float, help="in-betweening: span start (s)")
        group.add_argument("--end", type=float, help="in-betweening: span end (s)")
        group.add_argument("--continue", dest="continuation", help="(T, 263) features .npy to extend by --seconds")

    def write_samples(self, task: MotionTask, args, captions: list[str], options: MaskedSamplingOptions,
                      batch_size: int, out: Path) -> str:
        seconds = args.seconds
        if seconds is not None and len(seconds) not in (1, len(args.prompt)):
            raise UsageError(f"give --seconds once or once per prompt ({len(args.prompt)}), got {len(seconds)}")
        if seconds is not None and min(seconds) <= 0:
            raise UsageError(f"--seconds: expected durations > 0 s, got {seconds}")
        if args.inbetween and (args.start is None or args.end is None):
            raise UsageError("--inbetween needs --start and --end (seconds)")
        if args.inbetween and args.continuation:
            raise UsageError("give --inbetween or --continue, not both")
        per_caption = None
        if seconds is not None:
            per_caption = [s for s in (seconds * len(args.prompt) if len(seconds) == 1 else seconds)
                           for _ in range(args.num)]
        inbetween = continuation = None
        vq = task.require_vqvae()
        if args.inbetween:
            inbetween = Inbetween(read_motion(args.inbetween, "--inbetween", vq.config.feature_dim, vq.frames_per_code),
                                  args.start, args.end)
        if args.continuation:
            continuation = read_motion(args.continuation, "--continue", vq.config.feature_dim, vq.frames_per_code)
        batches = generate_in_batches(
            lambda part, opts: task.sample_motion(
                captions[part], None if per_caption is None else per_caption[part], options=opts,
                inbetween=inbetween, continuation=continuation),
            len(captions), options, batch_size,
        )
        motions = [motion for batch in batches for motion in batch]
        write_motions(out, motions, captions, task.fps, task.require_vqvae().config.num_joints)
        return f"wrote {len(motions)} motions (features and joints .npy, .bvh, stick-figure .mp4 / .gif) to {out}"


def read_motion(path: str, option: str, dim: int, frames_per_code: int) -> np.ndarray:
    """A (T, dim) float32 feature clip read from ``path``; a wrong width, NaN / Inf frames or fewer
    frames than one code raise naming the file and the option."""
    features = read_array(input_file(path, option))
    return check_features(features, dim, frames_per_code, f"{option} {path}").numpy()


def given_vqvae(argv: list[str]) -> str | None:
    """The VQ-VAE folder named by ``--model.vqvae`` / ``--data.vqvae_dir`` or a ``--config`` YAML."""
    for option in VQ_OPTIONS:
        if (value := option_value(argv, option)) is not None:
            return value
    path = option_value(argv, "--config")
    if path and Path(path).is_file():
        config = yaml.safe_load(Path(path).read_text()) or {}
        for group, key in (("model", "vqvae"), ("data", "vqvae_dir")):
            section = config.get(group) or {}
            if isinstance(section, dict) and section.get(key):
                return str(section[key])
    return None


def vq_codebook_size(folder: str | Path) -> int:
    """The codebook size in a motion VQ-VAE export's config.json."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"motion VQ-VAE not found: {folder} (expected config.json + model.safetensors, "
                                "e.g. <run>/model of `unidit fit motion-vq`)")
    return int(json.loads(config.read_text()).get("codebook_size", 512))


APP = MotionApp()
