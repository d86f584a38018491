"""`unidit fit|sample|eval caption` run for real: a tiny tokenizer fit, a tiny captioner, its export and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from unidit.apps.cli import main
from unidit.apps.task_cli import checkpoint_hparam
from unidit.tasks.caption.scenes import scene_split
from unidit.tasks.caption.task import TIME_SHIFT

SIZES = ["--data.num_train", "24", "--data.num_val", "4", "--data.num_test", "6"]
# without Java's PTB tokenizer and METEOR (a JVM start each, ~9 s): test_caption_data.py covers those
REPORT = ["--report.steps", "3", "--report.batch_size", "4", "--report.num_written", "3", "--report.java", "false"]
TINY = [
    "--model.preset", "tiny",
    "--model.backbone", "{dim: 64, depth: 2, num_heads: 4, context_dim: 64}",
    "--model.image_channels", "16",
    "--model.lr", "0.003",
    "--model.warmup_steps", "5",
    "--trainer.max_steps", "30",
    "--trainer.val_check_interval", "15",
    "--trainer.limit_val_batches", "1",
    "--trainer.log_every_n_steps", "2",
    "--trainer.enable_progress_bar", "false",
    "--data.batch_size", "24",
    # a tokenizer fitted in seconds: 60 distinct captions, 5 head steps
    "--text_latent_fit.args", '["--max_captions", "60", "--training.steps", "5", "--training.batch_size", "16"]',
    *SIZES, *REPORT,
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, cache):
    """One tiny fit without --model.text_latent: the tokenizer is fitted first, under the same root."""
    root = tmp_path_factory.mktemp("fit")
    assert main(["fit", "caption", *TINY, "--data.cache_dir", str(cache), "--trainer.default_root_dir", str(root)]) == 0
    runs = sorted(root.glob("caption/version_*"))
    assert runs, list(root.rglob("*"))
    return root, runs[-1]


def _eval_args(cache: Path) -> list[str]:
    return [*SIZES, "--data.cache_dir", str(cache), *REPORT]


def test_fit_trains_the_tokenizer_first_and_bundles_it_with_the_export(fitted):
    root, run = fitted
    tokenizer = root / "text_latent" / "version_0" / "head"
    assert (tokenizer / "config.json").is_file() and (tokenizer / "model.safetensors").is_file()
    assert (root / "text_latent" / "version_0" / "metrics.json").is_file()  # its round trip on the test captions
    model = run / "model"
    assert (model / "text_latent" / "model.safetensors").read_bytes() == (tokenizer / "model.safetensors").read_bytes()
    recorded = json.loads((model / "task.json").read_text())["hparams"]["text_latent"]
    assert Path(recorded) == tokenizer.resolve()
    last = next(run.glob("checkpoints/last*.ckpt"))
    assert Path(checkpoint_hparam(str(last), "text_latent")) == tokenizer.resolve()  # a resumed run reuses it


def test_the_default_run_predicts_x0_at_high_noise_and_reports_with_guidance(fitted):
    """fit.yaml keeps the fixes of issue 22: x0 prediction, the captioner's time shift, guided report."""
    _, run = fitted
    hparams = json.loads((run / "model" / "task.json").read_text())["hparams"]
    assert hparams["prediction"] == "x0" and hparams["time_shift"] == TIME_SHIFT > 1
    report = json.loads((run / "report" / "metrics.json").read_text())["report"]
    assert report["cfg_scale"] > 1 and report["shift"] is None  # sampling follows the training shift


def test_fit_loss_falls(fitted):
    _, run = fitted
    with (run / "metrics.csv").open() as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(losses) >= 10, losses
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


def test_fit_report_has_the_caption_metrics_and_examples(fitted):
    _, run = fitted
    report = run / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    generated, ceiling = metrics["generated"], metrics["reference_ceiling"]
    assert metrics["num_images"] == 6
    for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "attribute_accuracy", "object_recall"):
        assert np.isfinite(generated[name]) and generated[name] >= 0, name
    assert ceiling["attribute_accuracy"] == 1.0  # a reference caption describes its own scene correctly
    assert ceiling["BLEU-1"] > 0.3
    examples = json.loads((report / "captions.json").read_text())
    assert len(examples) == 3 and all(len(e["references"]) == 5 for e in examples)
    assert all((report / e["file"]).is_file() for e in examples) and (report / "samples.png").is_file()


def test_eval_of_the_export_reproduces_the_report(fitted, cache, tmp_path, capsys):
    _, run = fitted
    capsys.readouterr()
    assert main(["eval", "caption", "--ckpt", str(run / "model"), *_eval_args(cache), "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "CIDEr-D" in table and "attribute_accuracy" in table and "reference" in table
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["generated"] == json.loads((run / "report" / "metrics.json").read_text())["generated"]


def test_sample_captions_given_pictures(fitted, cache, tmp_path, capsys):
    _, run = fitted
    test = scene_split("test", seed=0, sizes={"train": 24, "val": 4, "test": 6}, cache_dir=cache)
    pictures = [str(test.image_paths[0]), str(test.image_paths[1])]
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["sample", "caption", "--ckpt", str(run / "model"), "--image", *pictures, "--num", "2",
                 "--steps", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    examples = json.loads((out / "captions.json").read_text())
    assert [e["image"] for e in examples] == [pictures[0], pictures[0], pictures[1], pictures[1]]
    assert all(isinstance(e["generated"], str) and (out / e["file"]).is_file() for e in examples)
    assert f"{pictures[1]}: {examples[3]['generated']}" in printed


def test_bad_sample_inputs_name_the_file(fitted, tmp_path, capsys):
    _, run = fitted
    model = str(run / "model")
    missing = tmp_path / "missing.png"
    assert main(["sample", "caption", "--ckpt", model, "--image", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert f"--image {missing}: no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    assert main(["sample", "caption", "--ckpt", model, "--image", str(broken), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert str(broken) in error and "cannot decode" in error
    assert main(["sample", "caption", "--ckpt", model, "--out", str(tmp_path / "o")]) == 2
    assert "--image" in capsys.readouterr().err


def test_fit_on_coco_without_a_tokenizer_says_what_is_needed(tmp_path, capsys):
    args = ["fit", "caption", *TINY, "--data.source", "coco", "--data.root", str(tmp_path),
            "--trainer.default_root_dir", str(tmp_path / "runs")]
    assert main(args) == 2
    assert "--model.text_latent is required for data.source 'coco'" in capsys.readouterr().err
