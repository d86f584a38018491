"""Checkpoints that are never half-written, and a checkpoint on preemption.

* :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in
  the target folder and ``os.replace``s it into place, so a crash or a full
  disk mid-write leaves the previous checkpoint intact; loads use
  ``weights_only=True`` and name the file when it is truncated or corrupt.
* :class:`PreemptionCheckpoint` turns SIGTERM (cluster preemption, handled by
  Lightning's signal connector) and a first SIGINT (Ctrl-C) into "finish the
  current step, write ``last.ckpt``, exit", so ``--ckpt_path last`` resumes
  exactly. A second Ctrl-C interrupts at once. A run stopped for non-finite
  losses writes ``nonfinite-stop.ckpt`` (its weights predate the divergence,
  since non-finite steps are skipped).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException
from unidit.training.nonfinite import NonFiniteLossError

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what schedulers expect from a terminated job


class CheckpointLoadError(ValueError):
    """A checkpoint file could not be read (truncated, corrupt or not a checkpoint)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes via a temporary file + ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not accept storage_options, got {storage_options!r}")
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path)  # remote filesystems: fsspec semantics
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # torch raises several types for truncated / foreign files
            raise CheckpointLoadError(
                f"cannot read checkpoint {path}: {error} (truncated or corrupt? use an earlier checkpoint)"
            ) from error


class PreemptionCheckpoint(Callback):
    """Write a resumable ``last.ckpt`` when the run is told to stop (SIGTERM / first SIGINT).

    Args:
        filename: checkpoint name inside the ``ModelCheckpoint`` folder
            (``<run>/checkpoints``); ``last.ckpt`` is what ``--ckpt_path last`` picks.
    """

    def __init__(self, filename: str = "last.ckpt") -> None:
        self.filename = filename
        self._sigint = False
        self._previous_sigint: Any = None

    # -- signals ---------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame) -> None:
        if self._sigint:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._sigint = True
        print("\nSIGINT: finishing this step, writing a checkpoint, then stopping (Ctrl-C again to abort)", flush=True)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigint()

    # -- the checkpoint ----------------------------------------------------------
    def checkpoint_path(self, trainer: pl.Trainer, filename: str | None = None) -> Path:
        callback = trainer.checkpoint_callback
        folder = None
        if isinstance(callback, ModelCheckpoint):
            folder = callback.dirpath or callback._ModelCheckpoint__resolve_ckpt_dir(trainer)  # type: ignore[attr-defined]
        if folder is None:
            folder = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        return Path(folder) / (filename or self.filename)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = bool(trainer.received_sigterm or self._sigint)
        if trainer.world_size > 1:  # every rank must stop (and save) at the same step
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        if not stop:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # collective under DDP; rank 0 writes
        why = "SIGTERM" if trainer.received_sigterm else "SIGINT"
        if trainer.is_global_zero:
            print(f"{why}: wrote {path} at step {trainer.global_step}; resume with --ckpt_path last", flush=True)
        self._restore_sigint()
        raise Preempted(f"stopped by {why} at step {trainer.global_step}; checkpoint {path}")

    def on_exception(self, trainer: pl.Trainer, pl_module, exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            # SIGTERM seen by Lightning outside a training batch (during validation or at an
            # epoch end): the training state is between steps, so this checkpoint resumes too.
            path = self.checkpoint_path(trainer)
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                print(f"SIGTERM: wrote {path} at step {trainer.global_step}; resume with --ckpt_path last", flush=True)
        elif isinstance(exception, NonFiniteLossError):
            path = self.checkpoint_path(trainer, "nonfinite-stop.ckpt")
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                print(f"non-finite losses: wrote {path} (weights from before the divergence)", flush=True)


class Preempted(SystemExit):
    """Training stopped on request after writing a resumable checkpoint."""

    def __init__(self, message: str) -> None:
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def find_last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest ``last*.ckpt`` of any earlier run of this configuration.

    Lightning's own ``ckpt_path="last"`` only looks in the *new* run's folder
    (a fresh ``version_N`` under the default loggers), so it would silently start
    from scratch; this looks in every ``<save_dir>/<name>/version_*/checkpoints``
    of the trainer's loggers, under ``default_root_dir``, and in a fixed
    ``ModelCheckpoint.dirpath``.
    """
    folders: list[Path] = []
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            folders.append(Path(callback.dirpath))
    for logger in trainer.loggers:
        save_dir, name = getattr(logger, "save_dir", None), getattr(logger, "name", None)
        if save_dir:
            base = Path(save_dir) / name if name else Path(save_dir)
            folders += [p / "checkpoints" for p in base.glob("version_*")]
            folders.append(base / "checkpoints")
    root = Path(trainer.default_root_dir)
    folders += list(root.glob("**/checkpoints"))
    found = {p for folder in folders if folder.is_dir() for p in folder.glob("last*.ckpt") if p.is_file()}
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None
