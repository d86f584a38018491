"""Exact resume: 2N steps straight == N steps, stop (SIGTERM path), resume N more — bit for bit on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from resume_check import differing, sigterm_at, training_state
from unidit.apps.shape3d.app import APP
from unidit.training.checkpointing import Preempted

# 64 training clouds / batch 8 = 8 batches per epoch: stopping at 5 is mid-epoch and the
# resumed half crosses into epoch 1 (a new permutation); stopping at 8 is on the epoch boundary.
TOTAL = 12
TINY_FIT = [
    "--model.preset", "tiny", "--model.resolution", "8", "--model.patch_size", "4", "--model.grid_channels", "8",
    "--model.warmup_steps", "3",  # schedule, caption dropout (0.1) and completion (0.1) all stay on
    "--trainer.max_steps", str(TOTAL), "--trainer.val_check_interval", "4", "--trainer.limit_val_batches", "1",
    "--trainer.num_sanity_val_steps", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--data.num_train", "64", "--data.num_val", "16", "--data.num_test", "32", "--data.batch_size", "8",
    "--data.num_points", "256",
]


def _fit(workdir: Path, cache: Path, *extra: str):
    args = [*TINY_FIT, "--data.cache_dir", str(cache), "--trainer.default_root_dir", str(workdir),
            "--trainer.logger.init_args.save_dir", str(workdir), *extra]
    return APP.train(args)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, shape_cache):
    cli = _fit(tmp_path_factory.mktemp("straight"), shape_cache)
    return cli, training_state(cli)


@pytest.mark.parametrize("stop_at", [5, 8], ids=["mid-epoch", "epoch-boundary"])
def test_stop_and_resume_is_bit_identical(stop_at, straight_run, tmp_path, shape_cache, monkeypatch):
    straight, expected = straight_run
    assert straight.trainer.global_step == TOTAL

    with sigterm_at(monkeypatch, stop_at), pytest.raises(Preempted):
        _fit(tmp_path / "split", shape_cache)
    last = list((tmp_path / "split").glob("shape3d/version_0/checkpoints/last.ckpt"))
    assert last, sorted(map(str, (tmp_path / "split").rglob("*")))
    assert torch.load(last[0], weights_only=True)["global_step"] == stop_at

    resumed = _fit(tmp_path / "split", shape_cache, "--ckpt_path", "last")
    assert resumed.trainer.global_step == TOTAL
    different = differing(expected, training_state(resumed))
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"
    lr = [pg["lr"] for pg in resumed.trainer.optimizers[0].param_groups]
    assert lr == [pg["lr"] for pg in straight.trainer.optimizers[0].param_groups]
