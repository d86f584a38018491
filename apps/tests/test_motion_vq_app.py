"""`unidit fit|eval|sample motion-vq` run for real on the tiny VQ-VAE and a small HumanML3D-layout folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from unidit.apps.cli import main
from unidit.apps.motion_vq.report import keyframe_baseline
from unidit.tasks.motion.synthetic import EmbeddedMotion, embedded_dataset
from unidit.tokenizers.motion import MotionVQVAE, recover_from_ric

SMALL = EmbeddedMotion(seed=5, num_train=16, num_val=4, num_test=4)


@pytest.fixture(scope="module")
def motion_folder(tmp_path_factory) -> Path:
    return embedded_dataset(SMALL, cache_dir=tmp_path_factory.mktemp("cache"))


def fit_args(workdir: Path, folder: Path, *extra: str) -> list[str]:
    return [
        "fit", "motion-vq",
        "--model.preset", "tiny",
        "--model.warmup_steps", "0",
        "--trainer.max_steps", "4",
        "--trainer.val_check_interval", "4",
        "--trainer.log_every_n_steps", "2",
        "--trainer.enable_progress_bar", "false",
        "--data.source", "folder",
        "--data.folder", str(folder),
        "--data.window", "16",
        "--data.batch_size", "4",
        "--trainer.default_root_dir", str(workdir),
        "--trainer.logger.init_args.save_dir", str(workdir),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory, motion_folder) -> Path:
    workdir = tmp_path_factory.mktemp("fit")
    assert main(fit_args(workdir, motion_folder)) == 0
    runs = sorted(workdir.glob("motion_vq/version_*"))
    assert runs, list(workdir.rglob("*"))
    return runs[-1]


def test_fit_exports_the_model_with_the_data_statistics(fitted_run: Path, motion_folder: Path):
    vqvae = MotionVQVAE.from_pretrained(str(fitted_run / "model"))
    assert vqvae.config.codebook_size == 64 and vqvae.config.feature_dim == 263
    assert torch.equal(vqvae.mean, torch.from_numpy(np.load(motion_folder / "Mean.npy")))
    assert torch.equal(vqvae.std, torch.from_numpy(np.load(motion_folder / "Std.npy")))
    assert list(fitted_run.glob("checkpoints/last*.ckpt"))


def test_fit_writes_the_metric_table(fitted_run: Path):
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    assert metrics["train_steps"] == 4
    (name, result), = metrics["sets"].items()
    assert name.endswith("test") and result["clips"] == SMALL.num_test
    assert set(result["rows"]) == {"vq-vae", "keyframes /4", "mean frame"}
    model = result["rows"]["vq-vae"]
    assert model["mpjpe_mm"] > 0 and np.isfinite(model["feature_l2"])
    assert 0 < model["codebook_usage"] <= 1 and 1 <= model["perplexity"] <= 64
    assert "MPJPE mm" in (fitted_run / "report" / "metrics.txt").read_text()


def test_eval_from_the_export_and_from_the_lightning_checkpoint(fitted_run: Path, motion_folder: Path, tmp_path, capsys):
    args = ["--folder", str(motion_folder), "--split", "val"]
    assert main(["eval", "motion-vq", "--ckpt", str(fitted_run / "model"), *args, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "vq-vae" in table and "keyframes /4" in table and "perplexity" in table
    exported = json.loads((tmp_path / "metrics.json").read_text())["sets"]
    ckpt = next(fitted_run.glob("checkpoints/last*.ckpt"))
    assert main(["eval", "motion-vq", "--ckpt", str(ckpt), *args, "--out", str(tmp_path / "ckpt")]) == 0
    from_ckpt = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["sets"]
    # The checkpoint holds the same weights and statistics as the export: identical numbers.
    assert from_ckpt == exported


def test_sample_writes_reconstruction_joints_and_codes(fitted_run: Path, motion_folder: Path, tmp_path):
    name = (motion_folder / "test.txt").read_text().split()[0]
    features = np.load(motion_folder / "new_joint_vecs" / f"{name}.npy")[:41]  # (41, 263): not whole codes
    np.save(tmp_path / "clip.npy", features)
    out = tmp_path / "out"
    assert main(["sample", "motion-vq", "--ckpt", str(fitted_run / "model"), "--motion", str(tmp_path / "clip.npy"),
                 "--out", str(out)]) == 0  # fmt: skip
    recon, joints, codes = (np.load(out / f"clip_{s}.npy") for s in ("recon", "joints", "codes"))
    assert recon.shape == (41, 263) and recon.dtype == np.float32 and np.isfinite(recon).all()
    assert joints.shape == (41, 22, 3) and np.allclose(joints, recover_from_ric(recon), atol=1e-6)
    assert codes.shape == (11,) and codes.min() >= 0 and codes.max() < 64  # ceil(41 / 4) codes
    vqvae = MotionVQVAE.from_pretrained(str(fitted_run / "model")).eval()
    with torch.no_grad():  # the codes decode to the written reconstruction
        decoded = vqvae.denormalize(vqvae.decode(torch.from_numpy(codes)[None]))[0, :41]
    assert np.allclose(decoded.numpy(), recon, atol=1e-5)


def test_bad_inputs_get_one_clear_line(fitted_run: Path, motion_folder: Path, tmp_path, capsys):
    np.save(tmp_path / "kit.npy", np.zeros((40, 251), np.float32))
    model = str(fitted_run / "model")
    assert main(["sample", "motion-vq", "--ckpt", model, "--motion", str(tmp_path / "kit.npy"), "--out", str(tmp_path)]) == 2
    assert "expected (T, 263) motion features" in capsys.readouterr().err
    nan = np.zeros((40, 263), np.float32)
    nan[3, 7] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert main(["sample", "motion-vq", "--ckpt", model, "--motion", str(tmp_path / "nan.npy"), "--out", str(tmp_path)]) == 2
    assert "NaN" in capsys.readouterr().err
    missing = tmp_path / "no_such_dataset"
    assert main(fit_args(tmp_path / "fit", missing)) == 2
    assert f"motion dataset folder not found: {missing}" in capsys.readouterr().err
    assert main(fit_args(tmp_path / "fit", motion_folder, "--data.kind", "kit")) == 2
    assert "--model.vqvae '{feature_dim: 251, num_joints: 21}'" in capsys.readouterr().err
    assert main(["eval", "motion-vq", "--ckpt", str(tmp_path / "nothing")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_keyframe_baseline_keeps_keys_and_interpolates():
    clip = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3) ** 2  # (10, 3)
    guess = keyframe_baseline(clip, 4)
    assert torch.equal(guess[[0, 4, 8]], clip[[0, 4, 8]])
    assert torch.allclose(guess[2], (clip[0] + clip[4]) / 2) and torch.equal(guess[9], clip[8])  # held past the last key
