"""Exported task weights: ``config.json`` + ``model.safetensors`` + ``task.json``.

``export_task`` writes the task's sampling network (the EMA weights) with
``save_pretrained`` plus the task's hyper-parameters, atomically (a staging
directory renamed into place). ``load_task`` rebuilds the task from such a
directory, or from a Lightning ``.ckpt`` read with ``weights_only=True`` —
no pickled code is ever executed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors.torch import load_file

T = TypeVar("T")
TASK_FILE = "task.json"
WEIGHTS_FILE = "model.safetensors"


def write_folder_atomically(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(staging)`` on a fresh staging folder beside ``directory``, then swap it into place.

    A reader never sees a half-written folder: an existing one is moved aside and
    removed only after the new one is in place.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def write_file_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place (readable by all).

    A reader never sees a half-written file, and a failed write leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_task(task, directory: str | os.PathLike) -> Path:
    """Write ``task``'s sampling network and hyper-parameters to ``directory`` atomically."""

    def write(staging: Path) -> None:
        network = task.export_network() if hasattr(task, "export_network") else task.sampling_network()
        network.save_pretrained(staging)  # adapters (if any) merged: loads as a plain task
        meta = {"task": type(task).__name__, "hparams": _plain(_init_arguments(type(task), dict(task.hparams)))}
        (staging / TASK_FILE).write_text(json.dumps(meta, indent=2))

    return write_folder_atomically(directory, write)


def load_task(task_cls: type[T], path: str | os.PathLike, map_location: str = "cpu") -> T:
    """Rebuild a ``task_cls`` from an export directory or a Lightning checkpoint."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected an export directory or a .ckpt file)")
    if path.is_dir():
        return _load_export(task_cls, path)
    try:
        task = task_cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign files
        raise ValueError(
            f"cannot load Lightning checkpoint {path} as a {task_cls.__name__} "
            f"(truncated, corrupt, or saved by another task?): {error}"
        ) from error
    return task


def _load_export(task_cls, directory: Path):
    meta_path, weights_path = directory / TASK_FILE, directory / WEIGHTS_FILE
    for required in (meta_path, weights_path):
        if not required.exists():
            raise FileNotFoundError(f"{directory} is not a unidit export: missing {required.name}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{meta_path} is not valid JSON: {error}") from error
    if meta.get("task") != task_cls.__name__:
        raise ValueError(
            f"{directory} holds a {meta.get('task')!r} export, not {task_cls.__name__!r}"
        )
    task = task_cls(**_init_arguments(task_cls, meta["hparams"]))
    try:
        state = load_file(weights_path)
    except Exception as error:
        raise ValueError(f"cannot read weights {weights_path}: {error}") from error
    task.denoiser.load_state_dict(state)
    task.ensure_ema().network.load_state_dict(state)
    task.eval()
    return task


def _init_arguments(task_cls, hparams: dict) -> dict:
    """The task's own constructor arguments: Lightning/LightningCLI add private ``_*`` entries."""
    return {k: v for k, v in hparams.items() if not k.startswith("_")}


def _plain(value):
    """JSON-safe copy of hyper-parameters (tuples → lists, tensors refused)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        raise TypeError("tensors are not allowed in task hyper-parameters")
    return value
