"""A joint run on 2 DDP CPU ranks (gloo) equals one process trained on both ranks' batches together.

The ranks draw different task mixes (each reads its own shard of the mixed
batches), and the joint loss is the mean of every sample's own error, so the
average of the ranks' gradients is the gradient of the global batch. The
helper ``joint_ddp_worker.py`` runs the DDP side in two ranks forked from this
process (``forked.ddp_ranks``) and the one-process side here.
"""

from __future__ import annotations

import json

import joint_ddp_worker
import torch
from forked import ddp_ranks
from joint_ddp_worker import RANKS, STEPS
from unidit.tokenizers.audio_vae import AudioVAE, audio_vae_config
from unidit.tokenizers.video_vae import VideoVAE, video_vae_config

TOLERANCE = 1e-5  # max |difference| of any weight after 4 AdamW steps; summation order is the only difference


def test_joint_ddp_two_cpu_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    torch.manual_seed(0)
    AudioVAE(audio_vae_config("tiny")).save_pretrained(tmp_path / "audio_vae")
    VideoVAE(video_vae_config("tiny")).save_pretrained(tmp_path / "video_vae")
    for status, log in ddp_ranks(lambda: joint_ddp_worker.run(tmp_path / "ddp", tmp_path, "ddp"), RANKS,
                                 tmp_path / "logs"):
        assert status == 0, log[-4000:]
    joint_ddp_worker.run(tmp_path / "merged", tmp_path, "merged")  # in this process

    ranks = [json.loads((tmp_path / "ddp" / f"steps_rank{r}.json").read_text()) for r in range(RANKS)]
    assert [len(steps) for steps in ranks] == [STEPS] * RANKS
    indices = [{index for index, _ in steps} for steps in ranks]
    assert not indices[0] & indices[1] and len(indices[0] | indices[1]) == RANKS * STEPS  # disjoint shards
    assert any(a[1] != b[1] for a, b in zip(*ranks)), "the ranks drew the same task mix at every step"
    merged = json.loads((tmp_path / "merged" / "steps_rank0.json").read_text())
    assert merged == [item for pair in zip(*ranks) for item in pair]  # the same global batches, in order

    ddp = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)
    single = torch.load(tmp_path / "merged" / "weights.pt", weights_only=True)
    assert ddp.keys() == single.keys()
    worst = max(float((ddp[k].float() - single[k].float()).abs().max()) for k in ddp if ddp[k].numel())
    print(f"max |DDP - one process| weight difference: {worst:.2e}")
    assert worst < TOLERANCE, f"DDP and one-process weights differ by up to {worst:.2e}"
    start = torch.load(tmp_path / "merged" / "init.pt", weights_only=True)
    moved = max(float((single[k].float() - start[k].float()).abs().max()) for k in single if k.startswith("denoiser."))
    print(f"max |trained - initial| weight change: {moved:.2e}")
    assert moved > 100 * TOLERANCE  # training moved the weights far more than DDP and one process differ
