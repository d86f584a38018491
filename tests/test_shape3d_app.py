"""`unidit fit|sample|eval shape3d` run for real on a tiny configuration."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh
from unidit.apps.cli import main
from unidit.apps.task_cli import native_cpu_bf16
from unidit.training.step_timer import cpu_model
from unidit.tokenizers.meshes import write_ply

TINY = [
    "--model.preset", "tiny",
    "--model.resolution", "16",
    "--model.patch_size", "4",
    "--model.grid_channels", "8",
    "--trainer.max_steps", "12",
    "--trainer.val_check_interval", "6",
    "--trainer.enable_progress_bar", "false",
    "--data.num_train", "64",
    "--data.num_val", "16",
    "--data.num_test", "32",
    "--data.batch_size", "8",
    "--report.per_kind", "2",
    "--report.steps", "3",
    "--report.emd_points", "32",
]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def fit_output(tmp_path_factory, shape_cache):
    """One tiny fit with only ``--trainer.default_root_dir``, run from an empty working directory."""
    workdir, cwd = tmp_path_factory.mktemp("fit"), tmp_path_factory.mktemp("cwd")
    records = Records()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(records)
    args = ["fit", "shape3d", *TINY, "--data.cache_dir", str(shape_cache), "--trainer.default_root_dir", str(workdir)]
    try:
        with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(io.StringIO()) as printed:
            warnings.simplefilter("always")
            patch.chdir(cwd)
            assert main(args) == 0
    finally:
        logger.removeHandler(records)
    return workdir, cwd, [str(w.message) for w in caught], records.messages, printed.getvalue()


@pytest.fixture(scope="module")
def fitted_run(fit_output):
    workdir = fit_output[0]
    runs = sorted(workdir.glob("shape3d/version_*"))
    assert runs, list(workdir.rglob("*"))
    return runs[-1]


def test_default_root_dir_holds_everything_and_fit_is_quiet(fit_output, fitted_run: Path):
    workdir, cwd, warned, logged, printed = fit_output
    assert not list(cwd.iterdir())  # nothing written to the working directory (no ./runs)
    assert {p.name for p in fitted_run.iterdir()} >= {"checkpoints", "model", "report", "metrics.csv"}
    assert not [w for w in warned if "args parameter" in w]
    assert not [m for m in logged if "litlogger" in m or m.startswith("💡")]
    closing = printed.strip().splitlines()[-1]  # the run names its speed, precision and processor
    assert closing.startswith("trained 12 steps: ") and "s/step" in closing
    expected = "bf16-mixed" if native_cpu_bf16() else "32-true"  # the YAML's bf16 falls back without native bf16
    assert f"precision {expected}" in closing
    assert "threads" in closing and cpu_model(with_threads=False) in closing


def test_fit_writes_model_samples_and_metrics(fitted_run: Path):
    assert (fitted_run / "model" / "model.safetensors").is_file()
    assert (fitted_run / "model" / "config.json").is_file()
    metrics = json.loads((fitted_run / "report" / "metrics.json").read_text())
    for key in ("classifier_accuracy_generated", "classifier_accuracy_real", "1-NNA-CD_mean_over_kinds", "COV-EMD_mean_over_kinds"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert len(metrics["per_kind"]) == 8
    plys = list((fitted_run / "report").glob("*.ply"))
    assert len(plys) == 8
    assert all(ply.with_suffix(".png").is_file() for ply in plys)
    cloud = trimesh.load(plys[0])
    assert np.asarray(cloud.vertices).shape == (2048, 3)
    assert (fitted_run / "report" / "samples.png").stat().st_size > 10_000
    assert list(fitted_run.glob("checkpoints/last*.ckpt"))


def test_sample_and_complete_from_export(fitted_run: Path, tmp_path: Path):
    out = tmp_path / "samples"
    main(["sample", "shape3d", "--ckpt", str(fitted_run / "model"), "--prompt", "a large torus",
          "--prompt", "a small cone", "--out", str(out), "--steps", "3", "--num_points", "512"])
    assert len(list(out.glob("*.ply"))) == 2 and (out / "samples.png").is_file()
    assert len(list(out.glob("*.png"))) == 3  # one render per prompt + the grid

    partial = tmp_path / "half.ply"
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.8).sample(400, seed=0)
    write_ply(partial, sphere[sphere[:, 1] > 0].astype(np.float32))
    done = tmp_path / "completed"
    main(["sample", "shape3d", "--ckpt", str(fitted_run / "model"), "--prompt", "a large sphere",
          "--complete", str(partial), "--known_points", "128", "--out", str(done), "--steps", "3", "--num_points", "512"])
    cloud = np.asarray(trimesh.load(next(done.glob("*.ply"))).vertices)
    assert cloud.shape == (512, 3)
    assert (cloud[:128, 1] > 0).all()  # the known upper half is kept as given


def test_eval_from_lightning_checkpoint(fitted_run: Path, shape_cache, capsys):
    ckpt = next(fitted_run.glob("checkpoints/last*.ckpt"))
    code = main(["eval", "shape3d", "--ckpt", str(ckpt), "--report.per_kind", "1", "--report.steps", "2",
                 "--report.emd_points", "16", "--data.cache_dir", str(shape_cache), "--data.num_train", "64",
                 "--data.num_val", "16", "--data.num_test", "32"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "classifier accuracy" in printed and "1-NNA-CD" in printed


def test_cli_rejects_unknown_app_and_verb(capsys):
    assert main(["fit", "nope"]) == 2
    assert "unidit: error: unknown app 'nope'" in capsys.readouterr().err
    assert main(["train", "shape3d"]) == 2
    assert "unidit: error: unknown verb 'train'" in capsys.readouterr().err
