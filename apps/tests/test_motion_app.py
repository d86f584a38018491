"""``unidit sample motion``: the masked-diffusion sampler options through the shared TaskApp parser, the
files written per motion (``.bvh`` included), and bad input files named in one line."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from unidit.apps.arguments import UsageError
from unidit.apps.cli import load_app, main
from unidit.tasks.motion.task import MotionTask
from unidit.tokenizers.motion import MotionVQVAE, motion_vq_config
from unidit.training.export import export_task
from unidit.training.masked_task import MaskedSamplingOptions


def test_sample_takes_masked_diffusion_options_with_the_reports_defaults():
    app = load_app("motion")
    args = app.sample_parser().parse_args(["--ckpt", "x", "--prompt", "a person waves", "--out", "o", "--top_k", "5"])
    options = app.sampling_options(args)
    assert isinstance(options, MaskedSamplingOptions)
    assert options.top_k == 5
    assert options.steps == app.report_class().steps  # unset options default to the report's
    args.steps = 0
    with pytest.raises(UsageError):
        app.sampling_options(args)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """An exported tiny (untrained) motion model over a tiny VQ-VAE."""
    folder = tmp_path_factory.mktemp("motion")
    torch.manual_seed(0)
    vq = MotionVQVAE(motion_vq_config("tiny"))
    vq.save_pretrained(folder / "vq")
    task = MotionTask(vqvae=str(folder / "vq"), preset="tiny", codebook_size=vq.config.codebook_size, warmup_steps=1)
    task.set_code_counts(torch.ones(vq.config.codebook_size))
    return str(export_task(task, folder / "model"))


def test_sample_writes_a_bvh_beside_the_features_and_video(model, tmp_path):
    out = tmp_path / "out"
    assert main(["sample", "motion", "--ckpt", model, "--prompt", "a person waves.", "--seconds", "1.2",
                 "--steps", "2", "--out", str(out)]) == 0
    bvh = sorted(out.glob("*.bvh"))
    assert len(bvh) == 1 and bvh[0].with_suffix(".npy").is_file() and bvh[0].with_suffix(".mp4").is_file()
    text = bvh[0].read_text()
    assert text.startswith("HIERARCHY\nROOT pelvis") and text.count("JOINT ") == 21
    assert "Frames: 24\n" in text and "Frame Time: 0.05000000" in text


def test_bad_motion_files_are_named_in_one_line(model, tmp_path, capsys):
    cases = {"kit.npy": (np.zeros((40, 251), np.float32), r"expected motion features \(T, 263\)"),
             "nan.npy": (np.full((40, 263), np.nan, np.float32), "NaN or infinite"),
             "short.npy": (np.zeros((3, 263), np.float32), "shorter than one code")}
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        assert main(["sample", "motion", "--ckpt", model, "--prompt", "a person jumps.", "--continue",
                     str(tmp_path / name), "--steps", "2", "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("unidit: error: --continue") and name in error
        assert re.search(message, error)
