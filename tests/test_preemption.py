"""SIGTERM / SIGINT to a real `unidit fit shape3d` process writes a resumable last.ckpt."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
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


_LAUNCHER = """
import json, os, sys
from unidit.apps.cli import main
import unidit.apps.shape3d.app  # imported once here, before any fork
for line in sys.stdin:  # one line from the test per run: [argv, log file]
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:  # a fresh process running `unidit <argv>`, as the console script does
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    print(pid, flush=True)
    print("ended", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class _Run:
    """A `unidit` process forked by the launcher: its pid, exit status and output."""

    def __init__(self, launcher: subprocess.Popen, argv: list[str], log: Path) -> None:
        self.launcher, self.log = launcher, log
        launcher.stdin.write(json.dumps([argv, str(log)]) + "\n")
        launcher.stdin.flush()
        self.pid = int(launcher.stdout.readline())

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)  # the launcher reaps it the moment it ends
        except ProcessLookupError:
            return False
        return True

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self) -> tuple[int, str]:
        line = self.launcher.stdout.readline()
        assert line.startswith("ended"), f"launcher said {line!r}"
        return int(line.split()[1]), self.log.read_text()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """One process that imports the CLI once and forks a fresh `unidit` process per run (an import saved per run)."""
    script = tmp_path_factory.mktemp("launcher") / "launcher.py"
    script.write_text(_LAUNCHER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    yield process
    process.stdin.close()
    process.wait(timeout=60)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_writes_resumable_checkpoint(signum, tmp_path, shape_cache, launcher):
    common = [*TINY_FIT, "--data.cache_dir", str(shape_cache), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.logger.init_args.save_dir", str(tmp_path)]
    proc = _Run(launcher, ["fit", "shape3d", *common, "--trainer.max_steps", "100000"], tmp_path / "fit.log")
    try:
        deadline = time.monotonic() + 120
        while _logged_steps(tmp_path) < 2:
            assert proc.alive(), proc.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no training step logged within 120 s:\n" + proc.log.read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signum)
        returncode, output = proc.wait()
    finally:
        if proc.alive():  # a failed check above: do not leave a 100000-step fit running
            proc.send_signal(signal.SIGKILL)
            proc.wait()  # and read its end, so the launcher's next run starts clean
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
