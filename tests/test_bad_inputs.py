"""Bad input, table-driven: every case fails with an error naming the file/field and what was expected.

Each case builds its bad input under ``tmp_path`` and returns the call that must
fail; the table gives the exception type and a regex the message must match.
Validation lives in the loaders (``unidit.tokenizers.meshes``,
``unidit.tasks.shape3d.data``), the task/denoiser config and
``unidit.training.export``; nothing here re-checks it. What the command line
prints for bad options and inputs is ``tests/test_cli_errors.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from unidit.tasks.shape3d.data import MAX_CAPTION_CHARS, load_mesh_folder, load_pc15k
from unidit.tasks.shape3d.datamodule import Shape3DData
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tokenizers.meshes import load_points, write_ply
from unidit.training.export import load_task

CUBE_OBJ = "\n".join(
    [f"v {x} {y} {z}" for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    + ["f 1 2 4", "f 1 4 3", "f 5 7 8", "f 5 8 6", "f 1 5 6", "f 1 6 2",
       "f 3 4 8", "f 3 8 7", "f 1 3 7", "f 1 7 5", "f 2 6 8", "f 2 8 4"]
) + "\n"


def _npy(tmp: Path, array, name="cloud.npy") -> Path:
    path = tmp / name
    np.save(path, array)
    return path


def _cloud(n=64) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)


def _folder(tmp: Path, rows: list[tuple[str, str]], header="file,caption", files=None) -> tuple[Path, str]:
    """A mesh folder with a good cube and the CSV ``rows``."""
    root = tmp / "meshes"
    root.mkdir(exist_ok=True)
    (root / "cube.obj").write_text(CUBE_OBJ)
    for name, content in (files or {}).items():
        (root / name).write_bytes(content)
    lines = [header] + [f"{f},{c}" for f, c in rows]
    (root / "captions.csv").write_text("\n".join(lines) + "\n")
    return root, "captions.csv"


def _truncated_npy(tmp):
    path = _npy(tmp, _cloud())
    path.write_bytes(path.read_bytes()[:90])
    return lambda: load_points(path, 32)


def _corrupt_ply(tmp):
    path = tmp / "bad.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\n"
                     b"property float y\nproperty float z\nend_header\n" + b"\x00" * 40)
    return lambda: load_points(path, 32)


def _garbage_ply(tmp):
    path = tmp / "noise.ply"
    path.write_bytes(bytes(range(256)) * 4)
    return lambda: load_points(path, 32)


def _corrupt_obj(tmp):
    path = tmp / "bad.obj"
    path.write_text("this is not\nan obj file\n")
    return lambda: load_points(path, 32)


def _nan_obj(tmp):
    path = tmp / "nan.obj"
    path.write_text(CUBE_OBJ.replace("v 0 0 0", "v nan 0 0"))
    return lambda: load_points(path, 32)


def _flat_obj(tmp):
    path = tmp / "flat.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")  # one degenerate triangle
    return lambda: load_points(path, 32)


def _nan_ply(tmp):
    cloud = _cloud()
    cloud[3, 1] = np.nan
    path = tmp / "nan.ply"
    path.write_bytes(b"")
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(cloud)}\n"
              "property float x\nproperty float y\nproperty float z\nend_header\n").encode()
    path.write_bytes(header + cloud.astype("<f4").tobytes())
    return lambda: load_points(path, 32)


def _csv_case(rows, **kw):
    def build(tmp):
        root, table = _folder(tmp, rows, **kw)
        return lambda: load_mesh_folder(root, table, num_points=32)
    return build


def _empty_folder(tmp):
    (tmp / "empty").mkdir()
    return lambda: load_mesh_folder(tmp / "empty", "captions.csv", num_points=32)


def _datamodule(**kwargs):
    def build(tmp):
        data = Shape3DData(**kwargs)
        return lambda: data.setup("fit")
    return build


def _pc15k_empty_split(tmp):
    (tmp / "pc15k" / "03001627" / "train").mkdir(parents=True)
    return lambda: load_pc15k(tmp / "pc15k", ["03001627"], "train", num_points=32)


def _foreign_export(tmp):
    export = tmp / "model"
    export.mkdir()
    (export / "task.json").write_text(json.dumps({"task": "AudioTask", "hparams": {}}))
    (export / "model.safetensors").write_bytes(b"")
    return lambda: load_task(Shape3DTask, export)


def _foreign_checkpoint(tmp):
    path = tmp / "audio.ckpt"
    torch.save({"state_dict": {"head.weight": torch.zeros(2, 2)}, "hyper_parameters": {"sample_rate": 16000},
                "pytorch-lightning_version": "2.6.0"}, path)
    return lambda: load_task(Shape3DTask, path)


def _not_a_checkpoint(tmp):
    path = tmp / "notes.ckpt"
    path.write_text("just text")
    return lambda: load_task(Shape3DTask, path)


@dataclass
class Case:
    id: str
    build: Callable[[Path], Callable[[], object]]
    error: type[BaseException]
    match: str


LONG = "a " + "very " * (MAX_CAPTION_CHARS // 5 + 1) + "large cube"
CASES = [
    Case("truncated-npy", _truncated_npy, ValueError, r"cloud\.npy: could not read \.npy"),
    Case("npy-wrong-columns", lambda t: lambda: load_points(_npy(t, np.zeros((64, 2))), 32), ValueError,
         r"cloud\.npy: expected an array of shape \(M, 3\), got \(64, 2\)"),
    Case("npy-3d-array", lambda t: lambda: load_points(_npy(t, np.zeros((4, 64, 3))), 32), ValueError,
         r"cloud\.npy: expected an array of shape \(M, 3\)"),
    Case("npy-nan", lambda t: lambda: load_points(_npy(t, np.full((64, 3), np.nan)), 32), ValueError,
         r"cloud\.npy: contains NaN or Inf"),
    Case("npy-inf", lambda t: lambda: load_points(_npy(t, np.full((64, 3), np.inf)), 32), ValueError,
         r"cloud\.npy: contains NaN or Inf"),
    Case("npy-strings", lambda t: lambda: load_points(_npy(t, np.full((64, 3), "x")), 32), ValueError,
         r"cloud\.npy: expected a numeric array"),
    Case("npy-too-few-points", lambda t: lambda: load_points(_npy(t, _cloud(10)), 32), ValueError,
         r"cloud\.npy: too few points: has 10, need 32"),
    Case("missing-file", lambda t: lambda: load_points(t / "gone.ply", 32), FileNotFoundError, r"gone\.ply"),
    Case("unsupported-suffix", lambda t: lambda: load_points((t / "a.txt").touch() or t / "a.txt", 32),
         ValueError, r"a\.txt: unsupported suffix '\.txt'"),
    Case("truncated-ply", _corrupt_ply, ValueError, r"bad\.ply: "),
    Case("garbage-ply", _garbage_ply, ValueError, r"noise\.ply: "),
    Case("ply-nan-vertex", _nan_ply, ValueError, r"nan\.ply: contains NaN or Inf"),
    Case("corrupt-obj", _corrupt_obj, ValueError, r"bad\.obj: .*(no geometry|empty|could not read)"),
    Case("obj-nan-vertex", _nan_obj, ValueError, r"nan\.obj: contains NaN or Inf"),
    Case("obj-zero-area", _flat_obj, ValueError, r"flat\.obj: empty mesh \(total surface area is zero\)"),
    Case("missing-root", lambda t: lambda: load_mesh_folder(t / "nowhere", "c.csv"), FileNotFoundError,
         r"mesh folder not found: .*nowhere"),
    Case("empty-folder", _empty_folder, FileNotFoundError, r"captions CSV not found: captions\.csv"),
    Case("csv-missing-file", _csv_case([("cube.obj", "a cube"), ("chair.obj", "a chair")]), FileNotFoundError,
         r"captions\.csv, line 3: shape file not found: .*chair\.obj"),
    Case("csv-path-escape", _csv_case([("../../etc/passwd", "a secret")]), ValueError,
         r"captions\.csv, line 2: file '\.\./\.\./etc/passwd' must be a relative path inside"),
    Case("csv-absolute-path", _csv_case([("/etc/passwd", "a secret")]), ValueError,
         r"line 2: file '/etc/passwd' must be a relative path inside"),
    Case("csv-empty-caption", _csv_case([("cube.obj", "  ")]), ValueError,
         r"captions\.csv, line 2 \(cube\.obj\): empty caption; expected 1 to \d+ characters"),
    Case("csv-overlong-caption", _csv_case([("cube.obj", LONG)]), ValueError,
         rf"line 2 \(cube\.obj\): caption of \d+ characters; expected at most {MAX_CAPTION_CHARS}"),
    Case("csv-bad-header", _csv_case([("cube.obj", "a cube")], header="path,text"), ValueError,
         r"captions\.csv: expected a header with columns 'file,caption'"),
    Case("csv-no-rows", _csv_case([]), ValueError, r"captions\.csv: no rows"),
    Case("csv-bad-label", _csv_case([("cube.obj", "a cube,big")], header="file,caption,label"), ValueError,
         r"line 2: label 'big' of 'cube\.obj' is not an integer"),
    Case("csv-corrupt-mesh", _csv_case([("cube.obj", "a cube"), ("x.obj", "a thing")], files={"x.obj": b"junk"}),
         ValueError, r"captions\.csv, line 3: .*x\.obj"),
    Case("pc15k-missing-root", lambda t: lambda: load_pc15k(t / "pc", ["02691156"]), FileNotFoundError,
         r"PC15k root not found: .*pc"),
    Case("pc15k-empty-split", _pc15k_empty_split, ValueError, r"03001627/train: empty split, expected <model_id>\.npy"),
    Case("meshes-without-root", _datamodule(source="meshes"), ValueError,
         r"data\.root and data\.captions_csv are required for source 'meshes'"),
    Case("unknown-preset", lambda t: lambda: Shape3DTask(preset="huge"), ValueError,
         r"preset: unknown preset 'huge'; choose one of"),
    Case("layout-mismatch", lambda t: lambda: Shape3DTask(resolution=30, patch_size=4), ValueError,
         r"resolution 30 must be divisible by patch_size 4: .*\(e\.g\. resolution 28 or 32\)"),
    Case("foreign-export", _foreign_export, ValueError, r"model holds a 'AudioTask' export, not 'Shape3DTask'"),
    Case("foreign-checkpoint", _foreign_checkpoint, ValueError,
         r"cannot load Lightning checkpoint .*audio\.ckpt as a Shape3DTask .*another task"),
    Case("not-a-checkpoint", _not_a_checkpoint, ValueError, r"cannot load Lightning checkpoint .*notes\.ckpt"),
    Case("missing-checkpoint", lambda t: lambda: load_task(Shape3DTask, t / "none.ckpt"), FileNotFoundError,
         r"checkpoint not found: .*none\.ckpt"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_with_a_clear_error(case: Case, tmp_path: Path):
    call = case.build(tmp_path)
    with pytest.raises(case.error, match=case.match):
        call()


def test_skip_bad_samples_counts_and_reports(tmp_path, capsys):
    cloud = _cloud(64)
    files = {"bad.npy": b"\x93NUMPY garbage", "nan.obj": CUBE_OBJ.replace("v 0 0 0", "v nan 0 0").encode()}
    root, table = _folder(tmp_path, [("cube.obj", "a cube"), ("bad.npy", "a blob"), ("good.npy", "a cloud"),
                                     ("../escape.obj", "an escape"), ("nan.obj", "a nan cube"),
                                     ("missing.ply", "a ghost"), ("cube.obj", "  ")], files=files)
    np.save(root / "good.npy", cloud)
    with pytest.raises(ValueError, match=r"line 3: .*bad\.npy"):
        load_mesh_folder(root, table, num_points=32)
    shapes = load_mesh_folder(root, table, num_points=32, skip_bad_samples=True)
    assert shapes.captions == ["a cube", "a cloud"]
    assert len(shapes.skipped) == 5
    printed = capsys.readouterr().out
    assert "skipped 5 bad sample(s) of 7" in printed
    for name in ("bad.npy", "escape.obj", "nan.obj", "missing.ply", "empty caption"):
        assert name in printed, name

    data = Shape3DData(source="meshes", root=str(root), captions_csv=table, num_points=32, skip_bad_samples=True)
    data.setup("fit")
    assert sum(len(s) for s in data.splits.values()) == 2


def test_write_ply_then_load_roundtrip_is_not_flagged(tmp_path):
    """Control: a good file passes the same checks (the table does not just reject everything)."""
    path = write_ply(tmp_path / "good.ply", _cloud(64))
    assert load_points(path, 32).shape == (32, 3)
