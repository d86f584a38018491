"""``unidit fit|sample|eval tts`` end to end on a tiny espeak-ng corpus, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from unidit.apps.cli import load_app, main
from unidit.tasks.tts.espeak import VOICES
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config

A, B = sorted(voice.name for voice in VOICES[:2])  # two voices of the embedded corpus
TINY = ["--model.preset", "tiny", "--model.backbone", "{}", "--model.text_dim", "32", "--model.text_layers", "1",
        "--data.sentences", "12", "--data.shared_sentences", "2", "--data.voices", f"[{A}, {B}]",
        "--data.batch_size", "4", "--trainer.max_steps", "3", "--report.max_utterances", "2",
        "--report.steps", "2", "--report.batch_size", "4", "--report.num_written", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture is in the repository's conftest.py


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One tiny fit (a random tiny audio VAE, 3 steps) whose export the tests sample and evaluate."""
    root = tmp_path_factory.mktemp("tts")
    torch.manual_seed(0)
    AudioVAE(audio_vae_config("tiny")).save_pretrained(root / "vae")
    argv = ["fit", "tts", *TINY, "--model.vae", str(root / "vae"), "--data.cache_dir", str(root / "cache"),
            "--trainer.default_root_dir", str(root / "runs")]
    assert main(argv) == 0
    run_dir = next((root / "runs" / "tts").glob("version_*"))
    rate = 16000
    soundfile.write(root / "prompt.wav", (0.3 * np.sin(np.arange(rate) * 0.05)).astype(np.float32), rate)
    soundfile.write(root / "low_rate.wav", np.zeros(8000, dtype=np.float32), 8000)
    soundfile.write(root / "empty.wav", np.zeros(0, dtype=np.float32), rate)
    return {"root": root, "model": str(run_dir / "model"), "report": run_dir / "report"}


def test_fit_writes_a_model_and_a_report_with_every_row(run):
    task = json.loads((Path(run["model"]) / "task.json").read_text())
    assert task["task"] == "TTSTask" and task["hparams"]["speakers"] == [A, B]
    assert Path(task["hparams"]["tokenizer"], "tokenizer.model").is_file()
    metrics = json.loads((run["report"] / "metrics.json").read_text())
    assert set(metrics["rows"]) == {"real", "vae", "generated", "prompted"}
    for name, row in metrics["rows"].items():
        assert 0.0 <= row["wer"] and -1.0 <= row["speaker_similarity"] <= 1.0, name
        assert (row["mcd_dtw"] is None) == (name == "real") and row["duration_error_s"] >= 0.0
    assert metrics["rows"]["real"]["duration_error_s"] == 0.0
    assert set(metrics["duration_predictor_error_s"]) == {"sentence", "tokens"}
    assert list(run["report"].glob("*.wav")) and (run["report"] / "overview.png").is_file()


def test_eval_prints_the_table_of_an_export(run, capsys):
    assert main(["eval", "tts", "--ckpt", run["model"], "--data.sentences", "12", "--data.shared_sentences", "2",
                 "--data.voices", f"[{A}, {B}]", "--data.cache_dir", str(run["root"] / "cache"),
                 "--report.max_utterances", "1", "--report.steps", "1", "--report.prompted", "false"]) == 0
    table = capsys.readouterr().out
    assert "WER" in table and "duration predictors" in table and "prompted" not in table


def test_sample_speaks_in_a_voice_and_in_a_prompts_voice(run, capsys):
    out = run["root"] / "spoken"
    assert main(["sample", "tts", "--ckpt", run["model"], "--text", "Anna found seven keys.", "--voice", A,
                 "--seconds", "0.5", "--speed", "0.5", "--steps", "2", "--out", str(out)]) == 0
    wav = next(out.glob("*.wav"))
    audio, rate = soundfile.read(wav)
    assert rate == 16000 and len(audio) == 16000  # 0.5 s at half speed
    assert wav.with_suffix(".png").is_file()
    prompted = run["root"] / "prompted"
    assert main(["sample", "tts", "--ckpt", run["model"], "--text", "Where is the river?", "--steps", "2",
                 "--prompt_wav", str(run["root"] / "prompt.wav"), "--prompt_text", "The old boat.",
                 "--out", str(prompted)]) == 0
    assert len(list(prompted.glob("*.wav"))) == 1 and (prompted / "overview.png").is_file()


@pytest.mark.parametrize("extra, expected", [
    (["--text", ""], r"--text '': .*empty"),
    (["--text", "€€ ## @@"], r"--text '€€ ## @@': none of the characters"),
    (["--text", "Hello.", "--voice", "nobody"], rf"--voice 'nobody': unknown; this model knows {A}, {B}"),
    (["--text", "Hello.", "--prompt_wav", "{root}/low_rate.wav", "--prompt_text", "hi"], r"8000 Hz; expected at least"),
    (["--text", "Hello.", "--prompt_wav", "{root}/empty.wav", "--prompt_text", "hi"], r"empty.wav: holds no samples"),
    (["--text", "Hello.", "--prompt_wav", "{root}/prompt.wav"], r"--prompt_wav and --prompt_text go together"),
])
def test_bad_inputs_fail_with_one_line(run, capsys, extra, expected):
    argv = ["sample", "tts", "--ckpt", run["model"], "--out", str(run["root"] / "bad"),
            *[e.format(root=run["root"]) for e in extra]]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unidit: error: "), lines
    assert __import__("re").search(expected, lines[0]), lines[0]


def test_fit_trains_the_vae_on_the_corpus_wavs_first_unless_given(tmp_path, monkeypatch):
    """Without --model.vae the audio VAE is trained on the train + val wavs; --vae.* options go to it."""
    import unidit.apps.audio_vae.app as audio_vae_app

    calls = []

    def fake_fit(argv):
        calls.append(argv)
        return tmp_path / "vae_run"

    monkeypatch.setattr(audio_vae_app, "fit", fake_fit)
    app = load_app("tts")
    argv = app.prepare_argv(["--data.sentences", "12", "--data.shared_sentences", "2", "--data.voices", f"[{A}]",
                             "--data.cache_dir", str(tmp_path / "cache"), "--vae.trainer.max_steps", "7",
                             "--trainer.default_root_dir", str(tmp_path / "runs")])
    [vae_argv] = calls
    folder = Path(vae_argv[vae_argv.index("--data.folder") + 1])
    assert vae_argv[vae_argv.index("--data.source") + 1] == "folder"
    assert vae_argv[vae_argv.index("--trainer.max_steps") + 1] == "7"
    assert len(list(folder.glob("*.wav"))) == 13  # 12 + 2 texts, one voice, less the one test text
    assert f"--model.vae={tmp_path / 'vae_run' / 'model'}" in argv and f'--model.speakers=["{A}"]' in argv
    assert not any(arg.startswith("--vae.") for arg in argv)
