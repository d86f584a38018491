"""What a person sees when a command is given something it cannot use, for every verb of every app.

Each row runs ``unidit <verb> <app> …`` in-process with one bad input and
asserts the command exits with status 2 and prints one line,
``unidit: error: …``, that names the option or file and what was expected,
and no Python traceback (that needs ``--debug``). No row trains anything: the
checkpoints are tiny untrained exports made once per module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import pytest
import torch
from unidit.apps.cli import main
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tasks.t2a.task import T2ATask
from unidit.tasks.t2v.task import T2VTask
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config
from unidit.training.export import export_task


World = SimpleNamespace  # the paths the rows point at: world.shape3d is the shape3d export, world.corrupt_wav …


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("cli-errors")
    torch.manual_seed(0)
    AudioVAE(audio_vae_config("tiny")).save_pretrained(root / "audio_vae")
    VideoVAE(video_vae_config("tiny")).save_pretrained(root / "video_vae")
    export_task(Shape3DTask(preset="tiny", resolution=8, patch_size=4, grid_channels=4), root / "shape3d")
    export_task(T2ATask(vae=str(root / "audio_vae"), preset="tiny", latent_channels=16), root / "t2a")
    export_task(T2VTask(vae=str(root / "video_vae"), preset="tiny", latent_channels=4), root / "t2v")
    (root / "a_file").write_text("not a folder")
    (root / "corrupt.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nend_header\n\x00")
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    names = ["audio_vae", "video_vae", "shape3d", "t2a", "t2v", "a_file", "out", "runs"]
    files = {f"corrupt_{suffix}": str(root / f"corrupt.{suffix}") for suffix in ("ply", "wav", "png", "mp4")}
    return World(root=str(root), **{name: str(root / name) for name in names}, **files)


@dataclass
class Row:
    id: str
    argv: Callable[[World], list[str]]
    expected: str  # regex the error line must match


def sample(app: str, *extra: str, ckpt: str | None = None) -> Callable[[World], list[str]]:
    return lambda w: ["sample", app, "--ckpt", ckpt or getattr(w, app), "--prompt", "a thing", "--out", w.out,
                      *[e.format(w=w) for e in extra]]


def evaluate(app: str, *extra: str, ckpt: str | None = None) -> Callable[[World], list[str]]:
    return lambda w: ["eval", app, "--ckpt", ckpt or getattr(w, app), *[e.format(w=w) for e in extra]]


def fit(app: str, *extra: str) -> Callable[[World], list[str]]:
    return lambda w: ["fit", app, *[e.format(w=w) for e in extra], "--trainer.default_root_dir", w.runs]


VAE_OPTION = {"t2a": ("--model.vae", "{w.audio_vae}"), "t2v": ("--model.vae", "{w.video_vae}"), "shape3d": ()}

ROWS: list[Row] = [
    Row("no-app", lambda w: ["fit"], r"expected a verb and an app"),
    Row("unknown-app", lambda w: ["fit", "shapes4d"], r"unknown app 'shapes4d'; expected one of shape3d, t2a, t2v"),
    Row("unknown-verb", lambda w: ["train", "shape3d"], r"unknown verb 'train'; expected one of fit, sample, eval"),
]
for app in ("shape3d", "t2a", "t2v"):
    other = {"shape3d": "t2a", "t2a": "t2v", "t2v": "shape3d"}[app]
    task_name = {"shape3d": "Shape3DTask", "t2a": "T2ATask", "t2v": "T2VTask"}[app]
    ROWS += [
        Row(f"{app}-sample-missing-ckpt", sample(app, ckpt="/nonexistent/model"),
            r"checkpoint not found: /nonexistent/model"),
        Row(f"{app}-sample-foreign-ckpt", lambda w, a=app, o=other: sample(a, ckpt=getattr(w, o))(w),
            rf"holds a '\w+' export, not '{task_name}'"),
        Row(f"{app}-sample-ckpt-not-a-checkpoint", lambda w, a=app: sample(a, ckpt=w.a_file)(w),
            r"cannot load Lightning checkpoint .*a_file"),
        Row(f"{app}-sample-steps-0", sample(app, "--steps", "0"), r"--steps: expected an integer >= 1, got 0"),
        Row(f"{app}-sample-num-negative", sample(app, "--num", "-1"), r"argument --num: expected an integer >= 1, got -1"),
        Row(f"{app}-sample-out-is-a-file", lambda w, a=app: [*sample(a)(w)[:-2], "--out", w.a_file],
            r"--out .*a_file: is a file; expected a folder"),
        Row(f"{app}-sample-unknown-sampler", sample(app, "--sampler", "rk4"),
            r"argument --sampler: invalid choice: 'rk4' \(choose from 'euler', 'heun', 'midpoint'\)"),
        Row(f"{app}-sample-cfg-rescale-out-of-range", sample(app, "--cfg_rescale", "2"),
            r"--cfg_rescale: expected a number in \[0, 1\], got 2"),
        Row(f"{app}-sample-empty-prompt", lambda w, a=app: [*sample(a)(w)[:4], "--prompt", "  ", "--out", w.out],
            r"--prompt: empty caption"),
        Row(f"{app}-sample-unknown-option", sample(app, "--stepz", "3"), r"unrecognized arguments: --stepz 3"),
        Row(f"{app}-eval-missing-ckpt", evaluate(app, ckpt="/nonexistent/model"), r"checkpoint not found"),
        Row(f"{app}-eval-foreign-ckpt", lambda w, a=app, o=other: evaluate(a, ckpt=getattr(w, o))(w),
            rf"not '{task_name}'"),
        Row(f"{app}-eval-steps-0", evaluate(app, "--report.steps", "0"), r"steps: expected an integer >= 1, got 0"),
        Row(f"{app}-eval-unknown-sampler", evaluate(app, "--report.sampler", "rk4"), r"report\.sampler"),
        Row(f"{app}-eval-out-is-a-file", evaluate(app, "--out", "{w.a_file}"), r"--out .*a_file: is a file"),
        Row(f"{app}-fit-unknown-key", fit(app, *VAE_OPTION[app], "--model.no_such", "1"),
            r"unrecognized arguments: --model\.no_such"),
        Row(f"{app}-fit-unknown-trainer-key", fit(app, *VAE_OPTION[app], "--trainer.max_stepz", "3"),
            r"unrecognized arguments: --trainer\.max_stepz"),
        Row(f"{app}-fit-bad-report-steps", fit(app, *VAE_OPTION[app], "--report.steps", "0"),
            r"steps: expected an integer >= 1, got 0"),
        Row(f"{app}-fit-missing-resume-checkpoint", fit(app, *VAE_OPTION[app], "--ckpt_path", "/nonexistent/last.ckpt"),
            r"--ckpt_path /nonexistent/last\.ckpt: no such checkpoint file"),
        Row(f"{app}-fit-unknown-preset", fit(app, *VAE_OPTION[app], "--model.preset", "huge"),
            r"unknown preset 'huge'"),
    ]
ROWS += [
    Row("shape3d-fit-bad-data-source", fit("shape3d", "--data.source", "nope"),
        r"data\.source.*Expected a typing\.Literal\['embedded', 'pc15k', 'meshes'\]"),
    Row("shape3d-fit-layout-mismatch", fit("shape3d", "--model.resolution", "30", "--model.patch_size", "4"),
        r"resolution 30 must be divisible by patch_size 4"),
    Row("shape3d-sample-complete-missing", sample("shape3d", "--complete", "{w.root}/none.ply"),
        r"--complete .*none\.ply: no such file"),
    Row("shape3d-sample-complete-corrupt", sample("shape3d", "--complete", "{w.corrupt_ply}"), r"corrupt\.ply"),
    Row("shape3d-sample-known-points-too-many", sample("shape3d", "--known_points", "4096", "--complete",
                                                       "{w.root}/none.ply"), r"--known_points 4096 must be below"),
    Row("t2a-sample-inpaint-corrupt", sample("t2a", "--inpaint", "{w.corrupt_wav}", "--start", "0", "--end", "1"),
        r"corrupt\.wav"),
    Row("t2a-sample-inpaint-without-span", sample("t2a", "--inpaint", "{w.corrupt_wav}"),
        r"--inpaint needs --start and --end"),
    Row("t2a-sample-seconds-count", lambda w: [*sample("t2a")(w), "--seconds", "1", "--seconds", "2"],
        r"give --seconds once or once per prompt \(1\), got 2"),
    Row("t2a-sample-seconds-zero", sample("t2a", "--seconds", "0"), r"--seconds: expected durations > 0 s, got \[0\.0\]"),
    Row("t2v-sample-image-corrupt", sample("t2v", "--image", "{w.corrupt_png}"), r"corrupt\.png"),
    Row("t2v-sample-extend-missing", sample("t2v", "--extend", "{w.root}/none.mp4"), r"--extend .*none\.mp4: no such"),
    Row("t2v-sample-bad-frame-count", sample("t2v", "--num_frames", "4"), r"num_frames must be 1 \+ k\*4"),
    Row("t2v-sample-image-and-extend", sample("t2v", "--image", "{w.corrupt_png}", "--extend", "{w.corrupt_mp4}"),
        r"give --image or --extend, not both"),
    Row("audio-vae-sample-missing-ckpt", lambda w: ["sample", "audio-vae", "--ckpt", "/nonexistent/vae", "--input",
                                                    w.corrupt_wav, "--out", w.out], r"/nonexistent/vae"),
    Row("audio-vae-sample-corrupt-input", lambda w: ["sample", "audio-vae", "--ckpt", w.audio_vae, "--input",
                                                     w.corrupt_wav, "--out", w.out + ".wav"], r"corrupt\.wav"),
    Row("audio-vae-sample-missing-option", lambda w: ["sample", "audio-vae", "--ckpt", w.audio_vae],
        r"the following arguments are required: --input, --out"),
    Row("audio-vae-eval-missing-ckpt", lambda w: ["eval", "audio-vae", "--ckpt", "/nonexistent/vae"],
        r"/nonexistent/vae"),
    Row("audio-vae-fit-unknown-key", fit("audio-vae", "--model.no_such", "1"), r"unrecognized arguments: --model"),
    Row("video-vae-sample-missing-ckpt", lambda w: ["sample", "video-vae", "--ckpt", "/nonexistent/vae", "--video",
                                                    w.corrupt_mp4, "--out", w.out + ".mp4"], r"/nonexistent/vae"),
    Row("video-vae-sample-corrupt-input", lambda w: ["sample", "video-vae", "--ckpt", w.video_vae, "--video",
                                                     w.corrupt_mp4, "--out", w.out + ".mp4"], r"corrupt\.mp4"),
    Row("video-vae-eval-missing-ckpt", lambda w: ["eval", "video-vae", "--ckpt", "/nonexistent/vae"],
        r"/nonexistent/vae"),
    Row("video-vae-fit-unknown-key", fit("video-vae", "--model.no_such", "1"), r"unrecognized arguments: --model"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_prints_one_error_line_and_exits_2(row: Row, world: World, capsys):
    code = main(row.argv(world))
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("unidit: error:")]
    assert len(errors) == 1, err[-2000:]
    assert re.search(row.expected, errors[0]), errors[0]
    assert "usage:" not in err, err[-2000:]


def test_debug_shows_the_traceback(world: World):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        main(["sample", "shape3d", "--ckpt", "/nonexistent/model", "--prompt", "x", "--out", world.out, "--debug"])


@pytest.mark.parametrize("app", ["t2a", "motion", "tts", "joint"])
def test_fit_help_trains_no_tokenizer_first(app, tmp_path, monkeypatch, capsys):
    """``unidit fit <app> --help`` prints the options and exits; the tokenizer a real fit would train first
    (audio VAE, motion VQ-VAE) is not trained, so nothing is written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["fit", app, "--help", "--trainer.default_root_dir", str(tmp_path / "runs")])
    assert done.value.code == 0
    assert "--trainer.max_steps" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists() and not list(tmp_path.iterdir())
