"""Each task's default, timed alone: seconds per training step and per generated sample.

``uv run python benchmarks/task_defaults.py`` builds every task app's model
from its ``fit.yaml`` (the VAEs at their default configs, untrained: their
cost does not depend on their weights), feeds batches of the default size
and shape (synthetic latents; the text encoder and its caption cache are the
real ones), and times

- a training step: ``training_step`` + backward + the fused AdamW step + the
  EMA update, under the precision the run would choose on this CPU;
- sampling: one batch of the report's size with the report's sampler, steps
  and guidance (VAE decoding included), divided by the batch size.

It writes ``benchmarks/TASKS.md`` with the CPU model in the header. These are
absolute times on one machine, to compare CPUs and to budget runs; speed
against other implementations is ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from unidit.apps.cli import load_app
from unidit.apps.task_cli import native_cpu_bf16
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.tasks.tts.espeak import VOICES
from unidit.tasks.tts.frontend import Line
from unidit.tokenizers.motion import MotionVQVAE, motion_vq_config
from unidit.tokenizers.text_latent import TextLatentTokenizer, fit_statistics
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config
from unidit.training.host_memory import retain_freed_host_memory
from unidit.training.step_timer import cpu_model

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ["The old boat moved slowly.", "Anna found seven keys on the table!", "Where is the quiet river?"]
CAPTIONS = ["a large tall thin cylinder lying on its side", "a bell rings twice, then a low hum",
            "a red circle moves from left to right while a small blue star bounces"]


def yaml_sections(app) -> tuple[dict, dict, dict]:
    config = yaml.safe_load(app.config.read_text())
    return config.get("trainer") or {}, config.get("model") or {}, config.get("report") or {}


def vae_folder(app_name: str, folder: Path) -> str | None:
    """An untrained VAE (motion: VQ-VAE) at the tokenizer app's default preset, saved for the task to load."""
    if app_name == "motion":
        preset = (yaml.safe_load(load_app("motion-vq").FIT_CONFIG.read_text())["model"] or {}).get("preset", "small")
        torch.manual_seed(0)
        MotionVQVAE(motion_vq_config(preset)).save_pretrained(folder / app_name)
        return str(folder / app_name)
    if app_name not in ("t2a", "t2v", "tts"):
        return None
    torch.manual_seed(0)
    audio = app_name in ("t2a", "tts")  # tts trains the audio VAE's default config on its speech
    tokenizer = load_app("audio-vae" if audio else "video-vae")
    preset = (yaml.safe_load(tokenizer.FIT_CONFIG.read_text())["model"] or {}).get("preset", "small")
    vae = AudioVAE(audio_vae_config(preset)) if audio else VideoVAE(video_vae_config(preset))
    vae.save_pretrained(folder / app_name)
    return str(folder / app_name)


def tts_lines(count: int, speakers: list[str]) -> list[Line]:
    """``count`` utterances cycling through :data:`SENTENCES` and ``speakers``."""
    return [Line(SENTENCES[i % len(SENTENCES)], speakers[i % len(speakers)]) for i in range(count)]


def batch_for(app_name: str, task, batch_size: int, generator: torch.Generator) -> dict:
    captions = [CAPTIONS[i % len(CAPTIONS)] + f" #{i}" for i in range(batch_size)]
    if app_name == "shape3d":
        return {"points": 0.5 * torch.randn(batch_size, 2048, 3, generator=generator), "caption": captions}
    if app_name == "motion":  # 5-49 codes (1-10 s at 4 frames a code, 20 fps)
        size = task.hparams.codebook_size
        lengths = torch.randint(5, 50, (batch_size,), generator=generator).tolist()
        return {"codes": [torch.randint(size, (n,), generator=generator) for n in lengths], "captions": captions}
    if app_name == "t2a":  # 2-5 s clips at 50 latent frames/s, cut to whole patches by the task
        frames = torch.randint(100, 251, (batch_size,), generator=generator).tolist()
        channels = task.denoiser.config.latent_channels
        return {"latents": [torch.randn(channels, n, generator=generator) for n in frames], "captions": captions}
    if app_name == "tts":  # 1.2-3.3 s utterances (the embedded corpus' range) at 50 latent frames/s
        seconds = 1.2 + 2.1 * torch.rand(batch_size, generator=generator)
        channels = task.denoiser.config.latent_channels
        lines = tts_lines(batch_size, task.speakers)
        latents = [torch.randn(channels, int(50 * s), generator=generator) for s in seconds.tolist()]
        return {"latents": latents, "lines": lines, "seconds": seconds}
    if app_name == "caption":  # 64x64 pictures, one caption each
        return {"image": torch.rand(batch_size, 3, 64, 64, generator=generator), "caption": captions}
    config = task.denoiser.config  # t2v: 17 frames -> 5 latent frames
    shape = (batch_size, config.latent_channels, 5, config.latent_height, config.latent_width)
    return {"latents": torch.randn(shape, generator=generator), "caption": captions}


@dataclass
class TaskDefault:
    """A task app's default model, built from its ``fit.yaml`` with untrained tokenizers."""

    app: object
    task: object
    precision: str  # what `unidit fit` would run on this CPU
    batch_size: int
    max_steps: int
    report: dict


def build_default(name: str, scratch: Path) -> TaskDefault:
    """Task ``name``'s default model (its tokenizer saved untrained into ``scratch``)."""
    app = load_app(name)
    trainer, model, report = yaml_sections(app)
    precision = str(trainer.get("precision", "32-true"))
    if precision.startswith("bf16") and not native_cpu_bf16():
        precision = "32-true"  # what `unidit fit` falls back to on this CPU
    model = {k: v for k, v in model.items() if k not in ("vae", "vqvae", "tokenizer", "speakers", "text_latent")}
    if name == "tts":
        model["speakers"] = [voice.name for voice in VOICES]
    vae = vae_folder(name, scratch)
    torch.manual_seed(0)
    task = app.task_class(**model, **({"vqvae" if name == "motion" else "vae": vae} if vae else {}))
    if name == "motion":  # the priority schedule's code statistics (flat: the cost does not depend on them)
        task.set_code_counts(torch.ones(task.hparams.codebook_size))
    if name == "caption":  # the text-latent tokenizer (its LM head untrained), statistics from a few captions
        tokenizer = TextLatentTokenizer(decoder="head")
        fit_statistics(tokenizer, CAPTIONS * 4)
        task.set_tokenizer(tokenizer)
    data = yaml.safe_load(app.config.read_text()).get("data") or {}
    return TaskDefault(app, task, precision, int(data.get("batch_size", 32)), int(trainer["max_steps"]), report)


def training_step(default: TaskDefault, name: str, ema: bool = True) -> Callable[[], float]:
    """One timed training step on a fixed batch of the default size: ``training_step`` + backward + the
    fused AdamW step (+ the EMA update); returns its seconds."""
    task = default.task
    batch = batch_for(name, task, default.batch_size, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=1e-4, fused=True)
    bf16 = default.precision.startswith("bf16")
    task.train()

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = task.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema:
            task.ensure_ema().update(task.denoiser)
        return time.perf_counter() - start

    return step


def time_training(default: TaskDefault, name: str, steps: int) -> list[float]:
    step = training_step(default, name)
    return [step() for _ in range(steps + 1)][1:]  # the first step also fills the caption cache: not counted


def time_sampling(app, task, report: dict, batch_size: int) -> float:
    options = app.report_class(**report).sampling()
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch_size)]
    task.eval()
    runs = {
        "shape3d": lambda: task.sample_clouds(captions, 2048, options=options),
        "t2a": lambda: task.sample_audio(captions, 3.5, options=options),
        "t2v": lambda: task.sample_videos(captions, num_frames=17, options=options),
        "motion": lambda: task.sample_motion(captions, 4.0, options=options),  # 4 s (20 codes)
        "tts": lambda: task.sample_speech(tts_lines(batch_size, task.speakers[:1]), [2.4] * batch_size,
                                          options=options),
        "caption": lambda: task.sample_captions(torch.rand(batch_size, 3, 64, 64), options=options),
    }
    run = runs[app.name]
    run()  # warm-up (and caption cache)
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / batch_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="shape3d,t2a,t2v,motion,tts,caption")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "TASKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    retain_freed_host_memory()
    warnings.filterwarnings("ignore")  # Lightning's "self.log() without a trainer"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.apps.split(","):
            default = build_default(name, Path(scratch))
            app, task, precision, batch_size = default.app, default.task, default.precision, default.batch_size
            step = time_training(default, name, args.steps)
            sample_batch = app.report_class(**default.report).batch_size
            per_sample = time_sampling(app, task, default.report, sample_batch)
            budget = default.max_steps * statistics.median(step)
            rows.append([name, str(batch_size), precision, f"{statistics.median(step):.3f} ({min(step):.3f}–{max(step):.3f})",
                         f"{budget / 60:.1f}", f"{per_sample:.3f}", str(sample_batch)])
            print(" | ".join(rows[-1]), flush=True)
    header = ["task", "batch", "precision", "s / training step, median (min–max)",
              "training at max_steps, min", "s / generated sample", "sampling batch"]
    lines = [
        "# Task defaults: seconds per training step and per generated sample",
        "",
        f"CPU: **{cpu_model()}**, torch {torch.__version__}. Regenerate with "
        f"`uv run python benchmarks/task_defaults.py --steps {args.steps}` (nothing else running).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"Training steps: {args.steps} timed after one warm-up step, on batches of the default size and shape "
        "(synthetic latents; real text encoder). 'Training at max_steps' is the median step times the YAML's "
        "max_steps: the DiT's share of `unidit fit`, without data generation, VAE training, caption encoding "
        "or the report. Sampling: one batch with the report's sampler, steps and guidance, VAE decoding included. "
        "TTS: utterances of 1.2-3.3 s (the embedded corpus), 2.4 s sampled; caption: random 64×64 pictures (an untrained LM head in the text-latent tokenizer; the cost does not depend on it). Motion: code lengths drawn uniformly from 5-49 and padded to the longest, where a run's loader "
        "buckets clips by length, so a run's steps are faster (0.057 s median in the measured default run); "
        "its sampling is 4-second motions, VQ decoding included.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
