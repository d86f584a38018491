"""DDP on 2 CPU processes (gloo) equals one process with the same global batch; shards are disjoint."""

from __future__ import annotations

import json

import ddp_worker
import pytest
import torch
from forked import ddp_ranks

STEPS, LOCAL_BATCH = 4, 8  # 64 clouds / (2 ranks x 8) = 4 steps = exactly one epoch
TOLERANCE = 1e-5  # max |difference| of any weight; float summation order is the only difference


def test_ddp_two_cpu_processes_match_single_process(tmp_path, shape_cache):
    ddp_out = tmp_path / "ddp"

    def one_rank() -> None:  # in each forked rank
        ddp_worker.run(ddp_out, str(shape_cache), ["--trainer.max_steps", str(STEPS), "--trainer.strategy", "ddp",
                                                    "--trainer.devices", "2", "--trainer.accelerator", "cpu",
                                                    "--data.batch_size", str(LOCAL_BATCH)])

    for status, log in ddp_ranks(one_rank, 2, tmp_path / "logs"):
        assert status == 0, log[-4000:]

    seen = [json.loads((ddp_out / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == STEPS * LOCAL_BATCH
    assert not set(seen[0]) & set(seen[1]), "a cloud was read by both ranks"
    assert len(set(seen[0]) | set(seen[1])) == 64, "one epoch must read every cloud exactly once"

    single = ddp_worker.run(tmp_path / "single", str(shape_cache),
                            ["--trainer.max_steps", str(STEPS), "--data.batch_size", str(2 * LOCAL_BATCH)])
    assert sorted(ddp_worker.SEEN) == sorted(seen[0] + seen[1])  # same global batches
    ddp = torch.load(ddp_out / "weights.pt", weights_only=True)
    reference = {k: v.detach() for k, v in single.model.state_dict().items()}
    assert ddp.keys() == reference.keys()
    worst = max(float((ddp[k].float() - reference[k].float()).abs().max()) for k in ddp if ddp[k].numel())
    print(f"max |DDP - single| weight difference: {worst:.2e}")
    assert worst < TOLERANCE, f"DDP and single-process weights differ by up to {worst:.2e}"
    moved = max(float((reference[k] - single.model.ema.network.state_dict().get(k[len("denoiser."):],
                                                                                  reference[k])).abs().max())
                for k in reference if k.startswith("denoiser."))
    assert moved > 0  # training changed the weights (the comparison is not vacuous)


def test_fsdp_on_cpu_is_refused_with_a_clear_message(tmp_path):
    """FSDP is GPU-only in Lightning 2.6 (its accelerator check refuses CPU); see docs/training.md."""
    from unidit.apps.shape3d.app import APP

    args = ["--trainer.strategy", "fsdp", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.default_root_dir", str(tmp_path), "--model.preset", "tiny"]
    with pytest.raises(ValueError, match="requires a GPU accelerator"):
        APP.train(args)
