"""`unidit fit joint` end to end on a tiny configuration, then every task served from the one checkpoint.

Tokenizers are tiny, randomly initialised VAEs handed in with ``--model.vae``; the
mixing, the shared backbone, the export and each task's own ``sample`` / ``eval``
run for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from unidit.apps import cli
from unidit.apps.joint.app import APP as JOINT
from unidit.apps.joint.app import task_data_args
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.tokenizers.motion import MotionVQVAE, motion_vq_config
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config

TASK_DATA = ('{shape3d: {num_train: 16, num_val: 4, num_test: 8, num_points: 256, cache_dir: CACHE}, '
             't2a: {num_train: 12, num_val: 4, test_per_kind: 1, cache_dir: CACHE}, '
             't2v: {num_train: 8, num_val: 4, num_test: 8, cache_dir: CACHE}, '
             'motion: {num_train: 24, num_val: 4, num_test: 8, cache_dir: CACHE}}')
TASK_OPTIONS = ('{shape3d: {resolution: 8, patch_size: 4, grid_channels: 8, point_hidden: 16}, '
                't2a: {latent_channels: 16, patch_size: 4}, t2v: {latent_channels: 4, latent_height: 8, '
                'latent_width: 8, patch_size: [1, 2, 2]}, motion: {codebook_size: 64}}')
EVAL = {
    "shape3d": ["--report.per_kind", "1", "--report.steps", "2", "--report.emd_points", "16", "--report.num_written", "2"],
    "t2a": ["--report.per_kind", "1", "--report.steps", "2", "--report.classifier_epochs", "1",
            "--report.num_written", "2"],  # each spectrogram PNG takes ~0.4 s of matplotlib
    "t2v": ["--report.num_clips", "4", "--report.steps", "2", "--report.num_written", "1",
            "--report.classifier_epochs", "1"],
    "motion": ["--report.max_clips", "8", "--report.steps", "2", "--report.batch_size", "8", "--report.num_written",
               "1", "--report.diversity_pairs", "4", "--report.r_precision_pool", "4", "--report.mm_captions", "2",
               "--report.mm_samples", "2", "--report.mm_pairs", "1", "--report.evaluator_epochs", "1"],
}
SAMPLE = {"shape3d": ["--num_points", "64"], "t2a": ["--seconds", "1"], "t2v": ["--num_frames", "9"],
          "motion": ["--seconds", "1"]}


def eval_data_args(workdir: Path, name: str) -> list[str]:
    task_data = yaml.safe_load(TASK_DATA.replace("CACHE", str(workdir / "cache")))
    return task_data_args({"task_data": task_data}, name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("joint")


def tiny_fit_args(workdir: Path, steps: int = 4) -> list[str]:
    torch.manual_seed(0)
    AudioVAE(audio_vae_config("tiny")).save_pretrained(workdir / "audio_vae")
    VideoVAE(video_vae_config("tiny")).save_pretrained(workdir / "video_vae")
    MotionVQVAE(motion_vq_config("tiny")).save_pretrained(workdir / "motion_vq")  # 64 codes
    cache = str(workdir / "cache")
    vaes = {"t2a": str(workdir / "audio_vae"), "t2v": str(workdir / "video_vae"), "motion": str(workdir / "motion_vq")}
    return [
        "--tasks", "shape3d,t2a,t2v,motion",
        "--model.preset", "tiny", "--model.backbone", "{arch: mmdit}", "--model.warmup_steps", "2",
        "--model.task_options", TASK_OPTIONS,
        "--model.vae", json.dumps(vaes),
        "--data.task_data", TASK_DATA.replace("CACHE", cache), "--data.batch_size", "6",
        "--data.steps_per_epoch", "3",
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.precision", "32-true", "--trainer.log_every_n_steps", "1",
        "--report.args", json.dumps(EVAL),
        "--trainer.default_root_dir", str(workdir), "--trainer.logger.init_args.save_dir", str(workdir),
    ]


@pytest.fixture(scope="module")
def fitted_run(workdir) -> Path:
    run = JOINT.fit(tiny_fit_args(workdir))
    return Path(run)


def test_fit_writes_one_checkpoint_for_every_task_and_reports(fitted_run: Path):
    model = fitted_run / "model"
    meta = json.loads((model / "joint.json").read_text())
    assert meta["tasks"] == ["shape3d", "t2a", "t2v", "motion"]
    assert meta["modalities"] == {"shape3d": 0, "t2a": 1, "t2v": 2, "motion": 3}
    assert (model / "backbone" / "model.safetensors").is_file()
    assert (model / "t2v" / "vae" / "model.safetensors").is_file()  # t2v's export bundles its VAE
    for name in meta["tasks"]:
        assert (model / name / "model.safetensors").is_file()
        assert (fitted_run / "report" / name / "metrics.json").is_file()
    from unidit.apps.motion.app import APP as MOTION

    motion = MOTION.load_checkpoint(model).sampling_network()  # the priority schedule's code statistics came along
    assert motion.modality == 3 and bool(motion.has_code_importance) and float(motion.code_importance.max()) > 0
    logged = (fitted_run / "metrics.csv").read_text().splitlines()[0]
    assert all(f"train/loss/{name}" in logged for name in meta["tasks"])


@pytest.mark.parametrize("name", ["shape3d", "t2a", "t2v", "motion"])
def test_sample_and_eval_each_task_from_the_joint_checkpoint(name, fitted_run: Path, tmp_path: Path):
    main = cli.main

    model = str(fitted_run / "model")
    out = tmp_path / "samples"
    assert main(["sample", name, "--ckpt", model, "--prompt", "a red thing", "--steps", "2", "--cfg_scale", "1.0",
                 "--out", str(out), *SAMPLE[name]]) == 0
    assert any(out.iterdir())
    assert main(["eval", name, "--ckpt", model, *eval_data_args(fitted_run.parent.parent, name), *EVAL[name]]) == 0


def test_checkpoint_lacking_a_task_and_unknown_task_fail_clearly(fitted_run: Path, tmp_path: Path, capsys):
    main = cli.main

    meta = json.loads((fitted_run / "model" / "joint.json").read_text())
    partial = tmp_path / "model"
    partial.mkdir()
    (partial / "joint.json").write_text(json.dumps({"tasks": ["shape3d"], "modalities": {"shape3d": 0}}))
    assert meta["tasks"] != ["shape3d"]
    code = main(["sample", "t2a", "--ckpt", str(partial), "--prompt", "a beep", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "joint checkpoint of the tasks shape3d; it has no 't2a' part" in capsys.readouterr().err
    assert main(["fit", "joint", "--tasks", "shape3d,tts"]) == 2
    assert "unknown task(s) ['tts']" in capsys.readouterr().err
