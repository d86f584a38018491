"""A joint run stopped by SIGTERM and resumed equals the straight run bit for bit (CPU).

The mixed batches (which task fills which slots of a row), every task's own
data order, the shared backbone, the per-task heads, the EMA and Adam all
continue exactly. 8 steps at 3 batches per epoch, stopped at step 4: the
resumed half finishes an epoch mid-way and crosses into a new one (the
epoch-boundary case of the shared resume code is in ``test_resume_exact.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from resume_check import differing, sigterm_at, training_state
from test_joint_app import tiny_fit_args
from unidit.apps.joint.app import APP as JOINT
from unidit.training.checkpointing import Preempted

TOTAL = 8


def _train(workdir: Path, *extra: str):
    args = [*tiny_fit_args(workdir, steps=TOTAL), "--trainer.num_sanity_val_steps", "1", *extra]
    return JOINT.train(args)


@pytest.fixture
def straight(tmp_path_factory):
    cli = _train(tmp_path_factory.mktemp("joint_straight"))
    return cli, training_state(cli)


def test_joint_stop_and_resume_is_bit_identical(straight, tmp_path, monkeypatch):
    stop_at = 4
    straight_cli, expected = straight
    assert straight_cli.trainer.global_step == TOTAL
    with sigterm_at(monkeypatch, stop_at), pytest.raises(Preempted):
        _train(tmp_path)
    last = sorted(tmp_path.glob("joint/version_0/checkpoints/last.ckpt"))
    assert last and torch.load(last[0], weights_only=True)["global_step"] == stop_at

    resumed = _train(tmp_path, "--ckpt_path", "last")
    assert resumed.trainer.global_step == TOTAL
    different = differing(expected, training_state(resumed))
    assert not different, f"{len(different)} of {len(expected)} tensors differ, e.g. {different[:5]}"
