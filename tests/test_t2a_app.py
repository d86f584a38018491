"""`unidit fit|sample|eval t2a` run for real on a tiny configuration (a random tiny audio VAE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from unidit.apps.cli import main
from unidit.apps.t2a.app import given_vae
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config

DATA = ["--data.num_train", "24", "--data.num_val", "4", "--data.test_per_kind", "1", "--data.batch_size", "4"]
REPORT = ["--report.per_kind", "1", "--report.steps", "2", "--report.classifier_epochs", "1",
          "--report.num_written", "2"]  # each spectrogram PNG takes ~0.4 s of matplotlib
TINY = [
    "--model.preset", "tiny",
    "--model.backbone", "{dim: 32, depth: 1, num_heads: 2}",
    "--trainer.max_steps", "4",
    "--trainer.val_check_interval", "4",
    "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false",
    *DATA, *REPORT,
    "--report.num_written", "3",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("t2a")


@pytest.fixture(scope="module")
def tiny_vae(workdir) -> Path:
    torch.manual_seed(0)
    folder = workdir / "vae"
    AudioVAE(audio_vae_config("tiny")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fitted_run(workdir, tiny_vae) -> Path:
    cache = workdir / "cache"
    args = ["fit", "t2a", *TINY, "--model.vae", str(tiny_vae), "--data.cache_dir", str(cache),
            "--trainer.default_root_dir", str(workdir), "--trainer.logger.init_args.save_dir", str(workdir)]
    assert main(args) == 0
    runs = sorted(workdir.glob("t2a/version_*"))
    assert runs, list(workdir.rglob("*"))
    assert list(cache.glob("t2a/latents-*.npz"))  # the clips were encoded once and cached
    return runs[-1]


def test_fit_writes_model_wavs_spectrograms_and_metrics(fitted_run: Path):
    assert (fitted_run / "model" / "model.safetensors").is_file()
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    for key in ("accuracy_generated", "accuracy_real", "accuracy_ratio", "accuracy_vae_reconstruction"):
        assert 0.0 <= metrics[key] <= 1.0 or key == "accuracy_ratio", key
    assert metrics["frechet_distance"] >= 0.0 and metrics["num_clips"] == 9
    by_kind = metrics["accuracy_vae_reconstruction_by_kind"]  # one value per kind, as for the generated clips
    assert set(by_kind) == set(metrics["accuracy_generated_by_kind"]) and all(0 <= v <= 1 for v in by_kind.values())
    wavs = sorted((fitted_run / "report").glob("*.wav"))
    assert len(wavs) == 3 and all(w.with_suffix(".png").is_file() for w in wavs)
    audio, rate = soundfile.read(wavs[0])
    assert rate == 16000 and audio.ndim == 1 and len(audio) >= 2 * rate
    assert (fitted_run / "report" / "overview.png").stat().st_size > 5_000


def test_sample_prompts_inpaint_and_continue(fitted_run: Path, tmp_path: Path):
    model = str(fitted_run / "model")
    out = tmp_path / "prompts"
    main(["sample", "t2a", "--ckpt", model, "--prompt", "a loud high beep, twice", "--seconds", "1.5",
          "--prompt", "a quiet low hum", "--seconds", "0.7", "--out", str(out), "--steps", "2"])
    lengths = sorted(soundfile.info(str(p)).frames for p in out.glob("*.wav"))
    assert lengths == [11200, 24000] and len(list(out.glob("*.png"))) == 3  # two clips + overview

    clip = tmp_path / "in.wav"
    soundfile.write(str(clip), 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000), 16000)
    inpainted = tmp_path / "inpainted"
    main(["sample", "t2a", "--ckpt", model, "--prompt", "a bell rings", "--inpaint", str(clip), "--start", "1.0",
          "--end", "1.5", "--out", str(inpainted), "--steps", "3", "--shift", "2.0", "--cache_interval", "2"])
    assert soundfile.info(str(next(inpainted.glob("*.wav")))).frames == 32000
    extended = tmp_path / "extended"
    main(["sample", "t2a", "--ckpt", model, "--prompt", "a siren", "--continue", str(clip), "--seconds", "1",
          "--out", str(extended), "--steps", "2"])
    assert soundfile.info(str(next(extended.glob("*.wav")))).frames == 48000
    assert main(["sample", "t2a", "--ckpt", model, "--prompt", "x", "--inpaint", str(clip), "--out", str(tmp_path)]) == 2


def test_eval_from_lightning_checkpoint_with_sweep(fitted_run: Path, workdir: Path, capsys):
    ckpt = next(fitted_run.glob("checkpoints/last*.ckpt"))
    out = workdir / "eval"
    code = main(["eval", "t2a", "--ckpt", str(ckpt), *REPORT, *DATA, "--data.cache_dir", str(workdir / "cache"),
                 "--report.sweep", "true", "--report.sweep_scales", "[1.0, 3.0]", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "event accuracy" in printed and "Frechet distance" in printed and "cfg w" in printed
    sweep = json.loads((out / "metrics.json").read_text())["sweep"]
    assert [(row["cfg_scale"], row["cfg_rescale"]) for row in sweep] == [(1.0, 0.0), (1.0, 0.5), (3.0, 0.0), (3.0, 0.5)]


def test_vae_is_found_in_arguments_and_configs(tmp_path: Path):
    config = tmp_path / "my.yaml"
    config.write_text("model:\n  vae: some/vae/model\n")
    assert given_vae(["--model.vae", "a"]) == "a"
    assert given_vae(["--data.vae_dir=b"]) == "b"
    assert given_vae(["--config", str(config)]) == "some/vae/model"
    assert given_vae(["--model.vae", "null", "--trainer.max_steps", "3"]) is None
