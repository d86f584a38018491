"""`unidit fit|sample|eval fmri` for real at tiny size: a caption model fitted first, the mappers, export and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from unidit.apps.arguments import UsageError
from unidit.apps.fmri.app import APP

CAPTION_FIT = [  # a captioner and tokenizer fitted in seconds (as in test_caption_app)
    "--model.preset", "tiny", "--model.backbone", "{dim: 64, depth: 2, num_heads: 4, context_dim: 32}",
    "--model.image_channels", "16", "--model.lr", "0.003", "--model.warmup_steps", "5",
    "--trainer.max_steps", "20", "--trainer.val_check_interval", "10", "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false", "--data.batch_size", "24",
    "--report.steps", "2", "--report.batch_size", "8", "--report.max_images", "4", "--report.num_written", "1",
    "--report.java", "false",  # no JVM for METEOR here (test_caption_data.py covers Java)
    "--text_latent_fit.args", '["--max_captions", "40", "--training.steps", "5", "--training.batch_size", "16"]',
]  # fmt: skip
SIMULATION = ("{voxels: [50, 35], train_images: 20, num_test: 8, trials_per_session: 42, noise: 0.5, "
              "scene_sizes: {train: 24, val: 4, test: 8}}")
REPORT = ["--report.steps", "2", "--report.batch_size", "8", "--report.num_written", "2", "--report.java", "false"]
MAPPING = ["--mapping.mlp", "{shared_dim: 16, hidden: 32, steps: 20, eval_every: 10, batch_size: 16}"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("fmri")
    run = APP.fit(["--caption_fit", json.dumps(CAPTION_FIT), "--data.simulation", SIMULATION,
                   "--data.cache_dir", str(cache), *MAPPING, *REPORT, "--out", str(out / "fmri")])
    return out, run


def test_fit_fits_a_caption_model_first_and_exports_everything(fitted):
    out, run = fitted
    assert run == out / "fmri" / "version_0"
    caption_run = next((out / "fmri" / "caption").glob("caption/version_*"))  # under <out>/caption
    model = run / "model"
    assert (model / "caption" / "task.json").is_file() and (model / "caption" / "text_latent" / "config.json").is_file()
    copied = (model / "caption" / "model.safetensors").read_bytes()
    assert copied == (caption_run / "model" / "model.safetensors").read_bytes()
    for part in ("ridge/subj01", "ridge/subj02", "mlp/subj02", "cross_subject"):
        assert (model / "mapping" / part / "model.safetensors").is_file(), part
    meta = json.loads((model / "fmri.json").read_text())
    assert meta["data"]["simulation"]["voxels"] == [50, 35] and meta["mapping"]["kinds"][0] == "ridge"


def test_report_has_ceiling_decoded_and_floor_with_retrieval(fitted):
    _, run = fitted
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    conditions = metrics["conditions"]
    assert metrics["num_images"] == 8 and metrics["chance"]["top-1"] == pytest.approx(1 / 8)
    expected = {"ceiling: true image features", "subj01 ridge", "subj02 cross_subject",
                "floor: shuffled fMRI (subj01 ridge)", "floor: shuffled fMRI (subj02 ridge)"}
    assert expected <= set(conditions)
    ceiling = conditions["ceiling: true image features"]
    assert ceiling["top-1"] == 1.0 and ceiling["feature_r"] == pytest.approx(1.0)  # true features find themselves
    for scores in conditions.values():
        assert {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "attribute_accuracy", "top-5"} <= set(scores)
        assert 0.0 <= scores["top-1"] <= scores["top-5"] <= 1.0
    assert set(metrics["mean_over_subjects"]) == {"ridge", "mlp", "cross_subject"}
    assert "subj01 ridge" in metrics["gaps"] and "CIDEr-D_above_floor" in metrics["gaps"]["subj01 ridge"]
    examples = json.loads((run / "report" / "captions.json").read_text())
    assert len(examples) == 2 and "subj01 ridge" in examples[0] and examples[0]["references"]
    assert (run / "report" / "samples.png").is_file()


def test_eval_reproduces_the_fit_report(fitted, capsys):
    _, run = fitted
    metrics = APP.evaluate(["--ckpt", str(run / "model"), *REPORT])
    fit_metrics = json.loads((run / "report" / "metrics.json").read_text())
    for name in ("subj01 ridge", "subj02 mlp"):
        for key in ("top-1", "CIDEr-D", "feature_r"):
            assert metrics["conditions"][name][key] == pytest.approx(fit_metrics["conditions"][name][key], abs=1e-6)
    assert "ceiling: true image features" in capsys.readouterr().out


def test_sample_decodes_given_trials_and_voxel_files(fitted, tmp_path):
    _, run = fitted
    captions = APP.sample(["--ckpt", str(run / "model"), "--subject", "subj02", "--image_id", "[0, 9]",
                           "--sampling.steps", "2", "--out", str(tmp_path / "a")])
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    written = json.loads((tmp_path / "a" / "captions.json").read_text())
    assert [w["trial"] for w in written] == ["image 0", "image 9"]
    np.save(tmp_path / "v.npy", np.zeros((3, 50), dtype=np.float32))
    assert len(APP.sample(["--ckpt", str(run / "model"), "--voxels", str(tmp_path / "v.npy"), "--mapper", "mlp",
                           "--sampling.steps", "2", "--out", str(tmp_path / "b")])) == 3
    with pytest.raises(UsageError, match=r"expected \(N, 35\)"):
        APP.sample(["--ckpt", str(run / "model"), "--subject", "subj02", "--voxels", str(tmp_path / "v.npy"),
                    "--out", str(tmp_path / "c")])
    with pytest.raises(UsageError, match="saw no such stimulus"):
        APP.sample(["--ckpt", str(run / "model"), "--image_id", "[99999]", "--out", str(tmp_path / "c")])
    with pytest.raises(UsageError, match="exactly one of"):
        APP.sample(["--ckpt", str(run / "model"), "--out", str(tmp_path / "c")])


def test_a_folder_that_is_not_a_caption_export_is_refused(tmp_path, cache):
    with pytest.raises(UsageError, match="no task.json"):
        APP.fit(["--caption", str(tmp_path), "--data.simulation", SIMULATION, "--data.cache_dir", str(cache),
                 "--out", str(tmp_path / "fmri")])
    with pytest.raises(FileNotFoundError, match="fmri.json"):
        APP.evaluate(["--ckpt", str(tmp_path)])
