"""`unidit fit|sample|eval audio-vae` run for real on a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from unidit.apps.audio_vae.report import pygame_wavs_folder
from unidit.apps.cli import main
from unidit.tokenizers.audio_io import write_wav
from unidit.tokenizers.audio_vae import AudioVAE


@pytest.fixture(scope="module")
def wav_folder(tmp_path_factory) -> Path:
    """Five short decaying tones (one at 22.05 kHz, resampled on load)."""
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    for i, rate in enumerate([16000] * 4 + [22050]):
        t = np.arange(int((0.5 + 0.1 * i) * rate)) / rate
        tone = 0.4 * np.sin(2 * np.pi * rng.uniform(200, 1200) * t) * np.exp(-2 * t)
        write_wav(folder / f"tone_{i}.wav", tone.astype(np.float32), rate)
    return folder


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory, wav_folder) -> Path:
    workdir = tmp_path_factory.mktemp("fit")
    args = [
        "fit",
        "audio-vae",
        "--model.preset",
        "tiny",
        "--trainer.max_steps",
        "5",
        "--trainer.val_check_interval",
        "5",
        "--trainer.enable_progress_bar",
        "false",
        "--data.source",
        "folder",
        "--data.folder",
        str(wav_folder),
        "--data.crop_seconds",
        "0.2",
        "--data.batch_size",
        "2",
        "--report.num_written",
        "1",
        "--trainer.default_root_dir",
        str(workdir),
        "--trainer.logger.init_args.save_dir",
        str(workdir),
    ]
    assert main(args) == 0
    runs = sorted(workdir.glob("audio_vae/version_*"))
    assert runs, list(workdir.rglob("*"))
    return runs[-1]


def test_fit_exports_the_vae_with_latent_stats_and_writes_metrics(fitted_run: Path):
    vae = AudioVAE.from_pretrained(str(fitted_run / "model"))
    assert vae.hop_length == 320 and vae.latent_channels == 16
    assert not np.allclose(vae.latent_std.numpy(), 1.0)  # statistics were measured, not left at identity
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    assert metrics["train_steps"] == 5
    sets = metrics["sets"]
    held_out = sets["folder held-out"]
    assert held_out["num_clips"] == 1
    for row in ("vae", "silence", "lowpass_4x"):
        assert set(held_out["rows"][row]) == {"mr_stft", "si_sdr", "mel_l1"}
        assert all(np.isfinite(v) for v in held_out["rows"][row].values())
    if pygame_wavs_folder() is not None:
        assert sets["pygame wavs (real)"]["num_clips"] == len(list(pygame_wavs_folder().glob("*.wav")))
    assert (fitted_run / "report" / "heldout_00_vae.wav").is_file()
    assert list(fitted_run.glob("checkpoints/last*.ckpt"))


def test_sample_reconstructs_a_wav_of_the_same_length(fitted_run: Path, wav_folder: Path, tmp_path: Path):
    source = wav_folder / "tone_4.wav"  # 22.05 kHz, 0.9 s: not a multiple of the hop after resampling
    out = tmp_path / "recon.wav"
    main(["sample", "audio-vae", "--ckpt", str(fitted_run / "model"), "--input", str(source), "--out", str(out)])
    audio, rate = soundfile.read(out)
    assert rate == 16000 and audio.shape == (round(0.9 * 16000),)


def test_eval_from_lightning_checkpoint_on_a_folder(fitted_run: Path, wav_folder: Path, capsys):
    ckpt = next(fitted_run.glob("checkpoints/last*.ckpt"))
    assert main(["eval", "audio-vae", "--ckpt", str(ckpt), "--folder", str(wav_folder)]) == 0
    table = capsys.readouterr().out
    assert "folder" in table and "SI-SDR" in table and "lowpass_4x" in table


def test_eval_names_a_missing_checkpoint(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        main(["eval", "audio-vae", "--ckpt", str(tmp_path / "nothing_here"), "--debug"])
