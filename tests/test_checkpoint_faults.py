"""Atomic checkpoints, truncated / foreign checkpoints, and non-finite losses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from unidit.apps.shape3d.app import APP
from unidit.backbones.rectified_flow import RectifiedFlow
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.training.checkpointing import AtomicCheckpointIO, CheckpointLoadError
from unidit.training.export import load_task
from unidit.training.nonfinite import NonFiniteLossError

TINY_FIT = [
    "--model.preset", "tiny", "--model.resolution", "8", "--model.patch_size", "4", "--model.grid_channels", "8",
    "--trainer.val_check_interval", "1000", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--data.num_train", "64", "--data.num_val", "16", "--data.num_test", "32", "--data.batch_size", "8",
    "--data.num_points", "256",
]


def _fit(workdir: Path, cache: Path, *extra: str):
    args = [*TINY_FIT, "--data.cache_dir", str(cache), "--trainer.default_root_dir", str(workdir),
            "--trainer.logger.init_args.save_dir", str(workdir), *extra]
    return APP.train(args)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, shape_cache) -> Path:
    workdir = tmp_path_factory.mktemp("ckpt")
    _fit(workdir, shape_cache, "--trainer.max_steps", "2")
    return next(workdir.glob("shape3d/version_0/checkpoints/last.ckpt"))


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, target)

    def dies_mid_write(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": torch.tensor(2)}, target)
    monkeypatch.undo()
    assert int(io.load_checkpoint(target)["step"]) == 1  # the previous checkpoint is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temporary left behind


def test_truncated_checkpoint_is_named_and_older_one_still_loads(good_checkpoint, tmp_path, shape_cache):
    truncated = tmp_path / "truncated.ckpt"
    data = good_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointLoadError, match="truncated.ckpt"):
        AtomicCheckpointIO().load_checkpoint(truncated)
    with pytest.raises(ValueError, match=r"cannot load Lightning checkpoint .*truncated\.ckpt"):
        load_task(Shape3DTask, truncated)
    with pytest.raises(CheckpointLoadError, match="truncated.ckpt"):
        _fit(tmp_path / "resume", shape_cache, "--trainer.max_steps", "3", "--ckpt_path", str(truncated))
    assert isinstance(load_task(Shape3DTask, good_checkpoint), Shape3DTask)


def test_resume_from_missing_checkpoint_path_fails_clearly(tmp_path, shape_cache):
    with pytest.raises(FileNotFoundError, match="no_such.ckpt"):
        _fit(tmp_path, shape_cache, "--trainer.max_steps", "1", "--ckpt_path", str(tmp_path / "no_such.ckpt"))


class _NaNInjector:
    """Wraps ``RectifiedFlow.loss`` so chosen training calls return NaN; records the weights seen."""

    def __init__(self, bad_calls):
        self.bad_calls, self.calls, self.weights = set(bad_calls), 0, []
        self.original = RectifiedFlow.loss

    def __call__(self, flow, velocity, x0, **kwargs):
        loss = self.original(flow, velocity, x0, **kwargs)
        owner = velocity.__closure__ and next(
            (c.cell_contents for c in velocity.__closure__ if isinstance(c.cell_contents, Shape3DTask)), None)
        if owner is None or not owner.training:
            return loss
        self.weights.append(torch.cat([p.detach().flatten() for p in owner.denoiser.parameters()]).clone())
        bad = self.calls in self.bad_calls
        self.calls += 1
        return loss * float("nan") if bad else loss

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(RectifiedFlow, "loss", lambda flow, velocity, x0, **kw: self(flow, velocity, x0, **kw))


def test_nonfinite_steps_are_skipped(tmp_path, shape_cache, monkeypatch, capsys):
    inject = _NaNInjector(bad_calls=[2, 3])
    inject.install(monkeypatch)
    cli = _fit(tmp_path, shape_cache, "--trainer.max_steps", "6")
    assert cli.model.nonfinite.skipped_total == 2 and cli.model.nonfinite.streak == 0
    w = inject.weights
    assert torch.equal(w[2], w[3]) and torch.equal(w[3], w[4])  # no update from the NaN steps
    assert not torch.equal(w[1], w[2]) and not torch.equal(w[4], w[5])  # finite steps do update
    assert "non-finite loss, skipped" in capsys.readouterr().out


def test_divergence_stops_with_checkpoint_from_before(tmp_path, shape_cache, monkeypatch):
    inject = _NaNInjector(bad_calls=range(3, 1000))
    inject.install(monkeypatch)
    with pytest.raises(NonFiniteLossError, match="non-finite.*for 3 consecutive steps"):
        _fit(tmp_path, shape_cache, "--trainer.max_steps", "50", "--model.max_nonfinite_steps", "3")
    saved = next(tmp_path.glob("shape3d/version_0/checkpoints/nonfinite-stop.ckpt"))
    task = load_task(Shape3DTask, saved)
    weights = torch.cat([p.detach().flatten() for p in task.denoiser.parameters()])
    assert torch.isfinite(weights).all()
    assert torch.equal(weights, inject.weights[3])  # the weights of the last finite step
    assert math.isfinite(float(torch.load(saved, weights_only=True)["global_step"]))


def _save_until_killed(io: AtomicCheckpointIO, target: Path, payload: torch.Tensor) -> None:
    """Rewrite ``target`` forever, printing each completed step (runs in a forked child until SIGKILLed)."""
    step = 0
    while True:
        step += 1
        io.save_checkpoint({"step": torch.tensor(step), "payload": payload}, target)
        print(step, flush=True)


def test_sigkill_during_saves_never_leaves_last_unreadable(tmp_path):
    """Real processes rewriting last.ckpt in a loop are SIGKILLed at several moments; every time,
    last.ckpt still loads (weights_only) and holds a complete checkpoint. Each saver is forked from
    this process (``forked.Forked``), so it starts with torch and Lightning already imported."""
    import signal
    import time

    from forked import Forked

    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    payload = torch.randn(2_000_000)  # 8 MB: each save takes long enough to be interrupted
    for attempt, delay in enumerate((0.07, 0.23)):
        saver = Forked(lambda: _save_until_killed(io, target, payload), tmp_path / f"saver{attempt}.log")
        try:
            deadline = time.monotonic() + 60
            while not saver.log.exists() or not saver.log.read_text().split():  # until a first save completed
                assert saver.alive(), saver.wait()[1][-3000:]
                assert time.monotonic() < deadline, "no save completed within 60 s"
                time.sleep(0.005)
            time.sleep(delay)
        finally:
            saver.send_signal(signal.SIGKILL)
        status, _ = saver.wait()
        assert status == -signal.SIGKILL  # the saver died by the kill, not by an error
        loaded = io.load_checkpoint(target)
        assert int(loaded["step"]) >= 1 and loaded["payload"].numel() == 2_000_000
