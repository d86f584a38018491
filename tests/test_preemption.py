"""SIGTERM / SIGINT to a real `unidit fit shape3d` process (forked from the test) writes a resumable last.ckpt."""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import pytest
import torch
from forked import Forked
from unidit.apps.cli import main
from unidit.apps.shape3d.app import APP
from unidit.training.checkpointing import PREEMPTED_EXIT_CODE

TINY_FIT = [
    "--model.preset", "tiny", "--model.resolution", "8", "--model.patch_size", "4", "--model.grid_channels", "8",
    "--trainer.val_check_interval", "1000", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1", "--trainer.logger.init_args.flush_logs_every_n_steps", "1",
    "--data.num_train", "64", "--data.num_val", "16", "--data.num_test", "32", "--data.batch_size", "8",
    "--data.num_points", "256",
]


def _logged_steps(workdir: Path) -> int:
    for metrics in workdir.glob("shape3d/version_*/metrics.csv"):
        try:
            rows = list(csv.DictReader(metrics.open()))
        except (OSError, csv.Error):
            return 0
        return sum(1 for row in rows if row.get("train/loss"))
    return 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_writes_resumable_checkpoint(signum, tmp_path, shape_cache):
    common = [*TINY_FIT, "--data.cache_dir", str(shape_cache), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.logger.init_args.save_dir", str(tmp_path)]
    argv = ["fit", "shape3d", *common, "--trainer.max_steps", "100000"]
    proc = Forked(lambda: main(argv), tmp_path / "fit.log")  # `unidit <argv>` in a process of its own
    try:
        deadline = time.monotonic() + 120
        while _logged_steps(tmp_path) < 2:
            assert proc.alive(), proc.wait()[1][-3000:]
            assert time.monotonic() < deadline, "no training step logged within 120 s:\n" + proc.wait()[1][-3000:]
            time.sleep(0.2)
        proc.send_signal(signum)
        returncode, output = proc.wait()
    finally:
        if proc.alive():  # a failed check above: do not leave a 100000-step fit running
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert returncode == PREEMPTED_EXIT_CODE, output[-3000:]
    last = tmp_path / "shape3d" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.is_file(), output[-3000:]
    assert f"wrote {last}" in output
    state = torch.load(last, weights_only=True)
    stopped_at = state["global_step"]
    assert stopped_at >= 2
    assert not (tmp_path / "shape3d" / "version_0" / "model").exists()  # no export after a preemption

    resumed = APP.train([*common, "--trainer.max_steps", str(stopped_at + 2), "--ckpt_path", "last"])
    assert resumed.trainer.global_step == stopped_at + 2


def test_sigterm_during_validation_writes_resumable_checkpoint(tmp_path, shape_cache, monkeypatch):
    """Lightning notices SIGTERM inside the validation loop; the checkpoint is still written and resumes."""
    from unidit.tasks.shape3d.task import Shape3DTask
    from unidit.training.checkpointing import Preempted

    common = [*TINY_FIT, "--data.cache_dir", str(shape_cache), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.max_steps", "4",
              "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "2"]
    original = Shape3DTask.validation_step

    def sigterm_in_validation(self, batch, batch_idx):
        if self.global_step == 2 and not self.trainer.sanity_checking:
            self.trainer._signal_connector.received_sigterm = True  # what Lightning's SIGTERM handler sets
        return original(self, batch, batch_idx)

    monkeypatch.setattr(Shape3DTask, "validation_step", sigterm_in_validation)
    with pytest.raises(Preempted) as stopped:
        APP.train(common)
    assert stopped.value.code == PREEMPTED_EXIT_CODE
    monkeypatch.setattr(Shape3DTask, "validation_step", original)
    last = tmp_path / "shape3d" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    resumed = APP.train([*common, "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 4
