"""The motion report and media: metrics of a tiny model on the embedded held-out clips, files written."""

from __future__ import annotations

import json

import numpy as np
from motion_fixtures import CODES, cache, data, tiny_task, vqvae_dir  # noqa: F401 (fixtures)
from unidit.tasks.motion.evaluate import MotionReport, evaluate_motion
from unidit.tasks.motion.media import render_stick_figure
from unidit.tokenizers.motion import recover_from_ric


def test_stick_figure_frames_show_the_skeleton(data):
    clip = data.splits["train"].clips[0].features
    frames = render_stick_figure(recover_from_ric(clip), size=64)
    assert frames.shape == (len(clip), 64, 64, 3) and frames.dtype == np.uint8
    drawn = (frames < 250).any(axis=-1).mean(axis=(1, 2))  # (T,) fraction of non-white pixels
    assert (drawn > 0.01).all() and (drawn < 0.5).all()


def test_report_measures_and_writes_motions(data, vqvae_dir, cache, tmp_path):
    task = tiny_task(vqvae_dir, data).eval()
    report = MotionReport(steps=3, cfg_scale=2.0, num_written=2, max_clips=8, diversity_pairs=20,
                          mm_captions=2, mm_samples=3, mm_pairs=2, evaluator_epochs=2)
    splits = data.load_clips(("train", "test"))
    evaluation = evaluate_motion(task, splits["train"], splits["test"], report, cache_dir=str(cache))
    metrics, clips = evaluation.metrics, min(8, len(splits["test"].clips))
    assert metrics["inbetween_given_kept_exactly"] == 1.0
    assert 0.0 <= metrics["inbetween_span_code_accuracy"] <= 1.0
    assert set(metrics["masked_ce_uniform"]) == {"0.3", "0.6", "0.9"}
    rows = metrics["text_to_motion"]
    assert rows["real"]["fid"] < 1e-6 and rows["generated"]["fid"] > 0  # the real set is the reference
    for row in rows.values():
        assert len(row["r_precision"]) == 3 and 0 <= row["r_precision"][0] <= row["r_precision"][2] <= 1
        assert row["mm_distance"] > 0 and row["diversity"] > 0
    assert metrics["r_precision_pool"] == clips  # fewer clips than 32: one pool of all of them
    assert rows["generated"]["multimodality"] > 0 and min(metrics["fid_floor"].values()) > 0
    assert f"R-precision in pools of {clips}" in evaluation.table and "generated" in evaluation.table
    assert list((cache / "motion").glob("evaluator-*/model.safetensors"))  # cached for the next report
    evaluation.write(tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["clips"] == clips
    joints_files, mp4s = sorted(tmp_path.glob("*_joints.npy")), sorted(tmp_path.glob("*.mp4"))
    assert len(joints_files) == len(mp4s) == len(list(tmp_path.glob("*.bvh"))) == 2
    assert len(list(tmp_path.glob("*.npy"))) == 4
    assert all(path.stat().st_size > 1000 for path in mp4s)
    joints = np.load(joints_files[0])
    assert joints.ndim == 3 and joints.shape[1:] == (22, 3)
    assert (tmp_path / "captions.txt").read_text().count("\n") == 2
