"""Test helper (not collected): a tiny shape3d fit, single-process or DDP, with batch-independent noise.

``test_ddp.py`` calls :func:`run` in each rank it forks (``forked.ddp_ranks``) and
once more in its own process for the single-process side. By hand,
``python tests/ddp_worker.py OUT CACHE [extra CLI args]`` runs it under Lightning's own
launcher, which re-runs the command line for rank 1. Each rank writes the content hashes
of the clouds it trained on (``seen_rank<r>.json``); rank 0 writes the final
``weights.pt`` (denoiser + EMA).

The flow objective normally draws t and noise for a whole batch from the global
RNG, so a batch split over two ranks would see different noise than the same
batch on one process. Here each sample's t and noise come from a generator
seeded by (step, the sample's content), making the DDP and single-process
objectives identical up to float summation order.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from unidit.apps.shape3d.app import APP
from unidit.backbones.rectified_flow import RectifiedFlow

TINY = [
    "--model.preset", "tiny", "--model.resolution", "8", "--model.patch_size", "4", "--model.grid_channels", "8",
    "--model.caption_dropout", "0", "--model.completion_prob", "0", "--model.warmup_steps", "1",
    "--trainer.val_check_interval", "1000", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.precision", "32-true",  # the equivalence is stated in fp32 (bf16 rounding would swamp 1e-5)
    "--data.num_train", "64", "--data.num_val", "16", "--data.num_test", "32", "--data.num_points", "128",
]
_original_loss = RectifiedFlow.loss
SEEN: list[str] = []
STEP = [0]


def _digest(cloud: torch.Tensor) -> str:
    return hashlib.sha1(cloud.detach().cpu().numpy().tobytes()).hexdigest()[:16]


def per_sample_loss(self, model_fn, x0, mask=None, cond=None, generator=None):
    if generator is not None or mask is not None or cond is not None:
        return _original_loss(self, model_fn, x0, mask=mask, cond=cond, generator=generator)
    ts, eps = [], []
    for cloud in x0:
        digest = _digest(cloud)
        SEEN.append(digest)
        g = torch.Generator().manual_seed(STEP[0] * 1_000_003 + int(digest[:12], 16))
        ts.append(self.sample_t(cloud[None], None, g))
        eps.append(torch.randn(cloud.shape, generator=g, dtype=x0.dtype))
    STEP[0] += 1
    t, noise = torch.cat(ts), torch.stack(eps).to(x0.device)  # (B,), (B, L, C)
    t_tok = t[:, None].expand(x0.shape[0], x0.shape[1])
    x_t = (1.0 - t_tok[..., None]) * x0 + t_tok[..., None] * noise
    pred = model_fn(x_t, t_tok)
    return (pred.float() - (noise - x0).float()).pow(2).mean()


def run(out: Path, cache: str, extra: list[str]):
    args = [*TINY, "--data.cache_dir", cache, "--trainer.default_root_dir", str(out),
            "--trainer.logger.init_args.save_dir", str(out), *extra]
    SEEN.clear()  # each run records its own clouds and counts its own steps
    STEP[0] = 0
    RectifiedFlow.loss = per_sample_loss
    try:
        cli = APP.train(args)
    finally:  # run in-process by the test: leave the objective as it was
        RectifiedFlow.loss = _original_loss
    rank = cli.trainer.global_rank
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seen_rank{rank}.json").write_text(json.dumps(SEEN))
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in cli.model.state_dict().items()}, out / "weights.pt")
    return cli


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
