"""``unidit fit|sample|eval audio-vae``.

``fit`` trains the waveform VAE with LightningCLI from ``fit.yaml`` (every field
overridable), measures its latent statistics on training clips, exports it to
``<run>/model`` (config.json + model.safetensors, what the t2a task loads) and writes
``<run>/report``: metrics.json, the printed metric table, and a few original /
reconstructed wav pairs. ``sample`` reconstructs one audio file; ``eval`` prints the
metric table of an exported model or a Lightning checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from jsonargparse import ArgumentParser
from unidit.apps.audio_vae.data import AudioVAEData, folder_clips
from unidit.apps.audio_vae.report import (
    AudioVAEReport,
    evaluate_sets,
    fit_latent_statistics,
    format_table,
    pygame_clips,
    save_vae,
    write_examples,
    write_metrics,
)
from unidit.apps.arguments import UsageParser
from unidit.apps.task_cli import run_directory, run_fit, step_summary
from unidit.tokenizers.audio_io import load_audio, write_wav
from unidit.tokenizers.audio_vae import AudioVAE, AudioVAETraining, reconstruct

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"
MODEL_CLASS, DATA_CLASS, EXTRA_GROUPS = AudioVAETraining, AudioVAEData, {"report": AudioVAEReport}


def fit(argv: list[str]) -> Path:
    cli = run_fit(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, extra_groups=EXTRA_GROUPS)
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    report = AudioVAEReport(**cli.config["report"])
    vae, data = cli.model.vae.eval(), cli.datamodule
    stats = fit_latent_statistics(vae, data.train_split, report)
    model_dir = save_vae(vae, run_dir / "model")
    print(f"exported the audio VAE (hop {vae.hop_length}, {vae.latent_channels} latent channels) to {model_dir}")
    _evaluate_and_write(
        vae,
        {_held_out_name(data): data.test_clips()},
        report,
        run_dir / "report",
        extra={"latent_stats": stats, "train_steps": int(cli.trainer.global_step)},
    )
    print(step_summary(cli.trainer), flush=True)
    return run_dir


def sample(argv: list[str]) -> Path:
    parser = UsageParser(
        prog="unidit sample audio-vae", description="Reconstruct an audio file with the VAE."
    )
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--input", required=True, help="wav/flac/ogg file to encode and decode")
    parser.add_argument("--out", required=True, help="output .wav")
    parser.add_argument("--tile_latents", type=int, default=256, help="latent frames per tile for long audio")
    parser.add_argument("--overlap_latents", type=int, default=16, help="context frames on each side of a tile")
    args = parser.parse_args(argv)
    vae = load_vae(args.ckpt)
    clip = load_audio(args.input, vae.sample_rate)
    recon = reconstruct(vae, clip, args.tile_latents, args.overlap_latents).clip(-1.0, 1.0)
    out = write_wav(args.out, recon, vae.sample_rate)
    print(f"wrote {out} ({len(recon) / vae.sample_rate:.2f} s at {vae.sample_rate} Hz)")
    return out


def evaluate(argv: list[str]) -> dict:
    parser = ArgumentParser(prog="unidit eval audio-vae", exit_on_error=False, description="Print the audio VAE's reconstruction metrics.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument(
        "--folder",
        type=Optional[str],
        default=None,
        help="evaluate every audio file in this folder instead of the embedded test split",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded data")
    parser.add_argument("--cache_dir", type=Optional[str], default=None, help="cache of the embedded data")
    parser.add_argument("--out", type=Optional[str], default=None, help="also write metrics.json and example wavs here")
    parser.add_class_arguments(AudioVAEReport, "report")
    config = parser.instantiate_classes(parser.parse_args(argv))
    vae = load_vae(config.ckpt)
    if config.folder:
        sets = {f"folder {Path(config.folder).name}": folder_clips(config.folder, vae.sample_rate)}
    else:
        data = AudioVAEData(sample_rate=vae.sample_rate, seed=config.seed, cache_dir=config.cache_dir)
        sets = {"embedded test": data.test_clips()}
    return _evaluate_and_write(vae, sets, config.report, Path(config.out) if config.out else None)


def load_vae(path: str) -> AudioVAE:
    """An :class:`AudioVAE` from an export directory or from a Lightning checkpoint (weights only)."""
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(f"checkpoint not found: {target} (expected an export directory or a .ckpt file)")
    if target.is_dir():
        if not (target / "config.json").is_file():
            raise FileNotFoundError(f"{target} is not an audio VAE export: missing config.json")
        return AudioVAE.from_pretrained(str(target)).eval()
    try:
        module = AudioVAETraining.load_from_checkpoint(target, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign files
        raise ValueError(f"cannot load {target} as an audio VAE training checkpoint: {error}") from error
    return module.vae.eval()


def _held_out_name(data: AudioVAEData) -> str:
    return "embedded test" if data.source == "embedded" else "folder held-out"


def _evaluate_and_write(
    vae: AudioVAE, sets: dict, report: AudioVAEReport, out: Path | None, extra: dict | None = None
) -> dict:
    real, names = pygame_clips(vae.sample_rate)
    sets = {**sets, "pygame wavs (real)": real}
    results = evaluate_sets(vae, sets, report)
    print(format_table(results))
    metrics = {
        "sets": results,
        "model": {
            "sample_rate": vae.sample_rate,
            "hop_length": vae.hop_length,
            "latent_channels": vae.latent_channels,
            "parameters": sum(p.numel() for p in vae.parameters()),
        },
        **(extra or {}),
    }
    if out is not None:
        write_metrics(out, metrics)
        held_out = next(iter(sets.values()))
        examples = {f"heldout_{i:02d}": clip for i, clip in enumerate(held_out[: report.num_written])}
        examples.update({f"real_{name}": clip for name, clip in list(zip(names, real))[: report.num_written]})
        write_examples(vae, examples, out, report)
        print(f"wrote metrics.json and {2 * len(examples)} wavs (original + reconstruction) to {out}")
    return metrics
