"""`unidit fit|sample|eval t2v` run for real on a tiny configuration.

The video VAE is stood in for by a tiny, randomly initialised one: ``fit``
without ``--model.vae`` calls ``unidit fit video-vae``, replaced here by a
stub that saves the tiny VAE where the real command would export it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from unidit.apps.cli import main
from unidit.apps.t2v import app as t2v_app
from unidit.tasks.t2v.data import embedded_split
from unidit.tokenizers.video_io import read_video, write_mp4
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config

TINY = [
    "--model.preset", "tiny",
    "--model.backbone", '{"arch": "mmdit"}',  # the default architecture, at the tiny preset's size
    "--model.latent_channels", "4",
    "--trainer.max_steps", "6",
    "--trainer.val_check_interval", "3",
    "--trainer.enable_progress_bar", "false",
    "--data.num_train", "32",
    "--data.num_val", "8",
    "--data.num_test", "16",
    "--data.batch_size", "8",
    "--report.num_clips", "4",
    "--report.steps", "2",
    "--report.num_written", "2",
    "--report.classifier_epochs", "1",
]


@pytest.fixture(scope="module")
def t2v_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("t2v-app-cache")


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory, t2v_cache):
    workdir = tmp_path_factory.mktemp("fit")
    calls = []

    def fake_fit_video_vae(argv: list[str]) -> Path:
        calls.append(argv)
        run = Path(argv[argv.index("--trainer.default_root_dir") + 1]) / "version_0"
        torch.manual_seed(0)
        VideoVAE(video_vae_config("tiny")).save_pretrained(run / "model")
        return run

    args = ["fit", "t2v", *TINY, "--data.cache_dir", str(t2v_cache), "--video_vae.args", '["--trainer.max_steps", "3"]',
            "--trainer.default_root_dir", str(workdir), "--trainer.logger.init_args.save_dir", str(workdir)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(t2v_app, "fit_video_vae", fake_fit_video_vae)
        assert main(args) == 0
    assert len(calls) == 1 and calls[0][-2:] == ["--trainer.max_steps", "3"]
    assert calls[0][calls[0].index("--data.cache_dir") + 1] == str(t2v_cache)
    runs = sorted(workdir.glob("t2v/version_*"))
    assert runs, list(workdir.rglob("*"))
    return runs[-1]


def test_fit_writes_model_vae_samples_and_metrics(fitted_run: Path):
    model = fitted_run / "model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert (model / "vae" / "model.safetensors").is_file()  # the export is self-contained
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    for name in ("accuracy_generated", "accuracy_real", "accuracy_reconstructed"):
        assert set(metrics[name]) == {"shape", "colour", "motion"}
        assert all(0.0 <= value <= 1.0 for value in metrics[name].values())
    assert metrics["frechet_distance"] >= 0.0 and metrics["temporal_difference_real"] > 0.0
    clips = sorted((fitted_run / "report").glob("*.mp4"))
    assert len(clips) == 2 and all(clip.with_suffix(".png").is_file() for clip in clips)
    assert read_video(clips[0]).shape == (17, 64, 64, 3)
    assert (fitted_run / "report" / "samples.png").stat().st_size > 5_000
    assert list(fitted_run.glob("checkpoints/last*.ckpt"))


def test_sample_from_an_image_and_extend_a_clip(fitted_run: Path, tmp_path: Path, t2v_cache):
    import matplotlib.pyplot as plt

    clip = embedded_split("val", seed=0, cache_dir=t2v_cache, size=2).videos[0]  # (17, 64, 64, 3)
    plt.imsave(tmp_path / "first.png", clip[0])
    out = tmp_path / "i2v"
    main(["sample", "t2v", "--ckpt", str(fitted_run / "model"), "--prompt", "a red circle grows",
          "--prompt", "a blue star falls", "--image", str(tmp_path / "first.png"), "--out", str(out), "--steps", "2"])
    assert len(list(out.glob("*.mp4"))) == 2 and (out / "samples.png").is_file()
    assert len(list(out.glob("*.png"))) == 3  # a strip per prompt + the overview

    write_mp4(tmp_path / "start.mp4", clip, fps=8)
    longer = tmp_path / "extended"
    main(["sample", "t2v", "--ckpt", str(fitted_run / "model"), "--prompt", "a green square rises",
          "--extend", str(tmp_path / "start.mp4"), "--num_frames", "21", "--out", str(longer), "--steps", "2"])
    assert read_video(next(longer.glob("*.mp4"))).shape == (21, 64, 64, 3)
    with pytest.raises(ValueError, match=r"1 \+ k\*4"):
        main(["sample", "t2v", "--ckpt", str(fitted_run / "model"), "--prompt", "x", "--extend",
              str(tmp_path / "start.mp4"), "--extend_frames", "8", "--out", str(longer), "--debug"])


def test_eval_from_lightning_checkpoint(fitted_run: Path, t2v_cache, tmp_path: Path, capsys):
    ckpt = next(fitted_run.glob("checkpoints/last*.ckpt"))
    code = main(["eval", "t2v", "--ckpt", str(ckpt), "--report.num_clips", "3", "--report.steps", "2",
                 "--report.classifier_epochs", "1", "--data.cache_dir", str(t2v_cache), "--data.num_train", "32",
                 "--data.num_val", "8", "--data.num_test", "16", "--out", str(tmp_path / "eval")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "real (ceiling)" in printed and "temporal difference" in printed
    assert np.isfinite(json.loads((tmp_path / "eval" / "metrics.json").read_text())["temporal_difference_ratio"])
