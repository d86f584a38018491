"""Test helper (not collected): a tiny joint fit on 2 DDP ranks, or on one process fed both ranks' batches.

``test_joint_ddp.py`` calls :func:`run` in each rank it forks (``forked.ddp_ranks``);
by hand, ``python tests/joint_ddp_worker.py OUT WORKDIR ddp|merged`` runs it under
Lightning's own launcher, which re-runs the command line for rank 1.

- ``ddp``: 2 CPU ranks (gloo). Each rank reads its own shard of the mixed
  batches, so the ranks draw different task mixes. Each rank writes the joint
  batch indices it trained on (``steps_rank<r>.json``); rank 0 writes the final
  weights (``weights.pt``).
- ``merged``: one process whose step ``j`` is rank 0's step ``j`` and rank 1's
  step ``j`` collated together: the same global batch (the test runs this side
  in its own process through :func:`run`, which undoes its patches afterwards).

Rank 0 of each run also writes the weights it starts from (``init.pt``).

The joint objective draws t and noise per task batch from the global RNG, so a
batch split over ranks would see other draws than the same samples in one
process. Here every sample's t and noise come from a generator seeded by the
sample's content, and the training-only conditioning and caption dropout are
off, so the two runs optimise the same objective up to float summation order.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from test_joint_app import EVAL, TASK_DATA
from torch.utils.data import DataLoader
from unidit.apps.joint import task as joint_task
from unidit.apps.joint.app import APP as JOINT
from unidit.apps.joint.data import JointData
from unidit.training.joint.mixing import MixedSteps, unwrap_one
from unidit.training.joint.objective import draw_targets
from unidit.training.resumable_sampler import ResumableSampler

STEPS, LOCAL_BATCH, RANKS, SEED = 4, 6, 2, 0
TASK_OPTIONS = ('{shape3d: {resolution: 8, patch_size: 4, grid_channels: 8, point_hidden: 16, completion_prob: 0}, '
                't2a: {latent_channels: 16, patch_size: 4, inpaint_prob: 0, continuation_prob: 0}, '
                't2v: {latent_channels: 4, latent_height: 8, latent_width: 8, patch_size: [1, 2, 2], '
                'first_frame_prob: 0, prefix_prob: 0}}')
USED: list[list] = []  # [joint batch index, {task: samples}] per batch trained on


def fit_args(out: Path, workdir: Path) -> list[str]:
    """One epoch of ``RANKS * STEPS`` joint batches, so each rank trains exactly ``STEPS`` steps."""
    return [
        "--tasks", "shape3d,t2a,t2v", "--seed_everything", str(SEED),
        "--model.preset", "tiny", "--model.warmup_steps", "1", "--model.caption_dropout", "0",
        "--model.task_options", TASK_OPTIONS,
        "--model.vae", json.dumps({"t2a": str(workdir / "audio_vae"), "t2v": str(workdir / "video_vae")}),
        "--data.task_data", TASK_DATA.replace("CACHE", str(workdir / "cache")),
        "--data.batch_size", str(LOCAL_BATCH), "--data.steps_per_epoch", str(RANKS * STEPS),
        "--data.seed", str(SEED),
        "--trainer.max_steps", str(STEPS), "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.precision", "32-true", "--trainer.accelerator", "cpu",
        "--report.args", json.dumps(EVAL),
        "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
    ]


def per_sample_targets(flow, x0, mask=None, cond=None):
    """``draw_targets`` with each sample's t and ε seeded by its own valid latents, not by the batch."""
    ts, eps = [], torch.zeros_like(x0)  # (B,), (B, L, C); padding keeps zero noise (never counted)
    for i in range(x0.shape[0]):
        valid = x0[i] if mask is None else x0[i][mask[i].bool()]  # (L_i, C)
        digest = hashlib.sha1(valid.detach().cpu().numpy().tobytes()).hexdigest()
        generator = torch.Generator().manual_seed(int(digest[:12], 16))
        ts.append(flow.sample_t(x0[i : i + 1], None if mask is None else mask[i : i + 1], generator))
        noise = torch.randn(valid.shape, generator=generator, dtype=x0.dtype)
        if mask is None:
            eps[i] = noise
        else:
            eps[i][mask[i].bool()] = noise
    return draw_targets(flow, x0, mask, cond, t=torch.cat(ts), eps=eps)


def record_indices(original):
    def getitem(self, index):
        USED.append([int(index), self.counts(index)])
        return original(self, index)
    return getitem


def merged_loader(self: JointData):
    """Step ``j`` = the samples of rank 0's step ``j`` and rank 1's step ``j`` of epoch 0, collated together."""
    steps: MixedSteps = self.train_steps
    orders = [list(ResumableSampler(steps, seed=SEED, shuffle=True, drop_last=True, num_replicas=RANKS, rank=r))
              for r in range(RANKS)]
    batches = []
    for indices in zip(*orders):
        drawn: dict[str, list] = {}
        for index in indices:
            USED.append([int(index), steps.counts(index)])
            for name, items in steps.samples(index).items():
                drawn.setdefault(name, []).extend(items)
        batches.append(steps.collate(drawn))
    return DataLoader(batches, batch_size=1, shuffle=False, collate_fn=unwrap_one)


def save_initial_weights(out: Path, original):
    def on_train_start(self):
        original(self)
        if self.global_rank == 0:
            torch.save({k: v.detach().cpu().clone() for k, v in self.state_dict().items()}, out / "init.pt")
    return on_train_start


def run(out: Path, workdir: Path, mode: str) -> None:
    """One side of the comparison; the patches are undone afterwards (the test runs ``merged`` in-process)."""
    patched = [(joint_task, "draw_targets"), (joint_task.JointTask, "on_train_start"),
               (MixedSteps, "__getitem__"), (JointData, "train_dataloader")]
    originals = [(owner, name, vars(owner).get(name)) for owner, name in patched]  # None: inherited
    USED.clear()
    joint_task.draw_targets = per_sample_targets
    out.mkdir(parents=True, exist_ok=True)
    joint_task.JointTask.on_train_start = save_initial_weights(out, joint_task.JointTask.on_train_start)
    extra = []
    if mode == "ddp":
        MixedSteps.__getitem__ = record_indices(MixedSteps.__getitem__)
        extra = ["--trainer.strategy", "ddp", "--trainer.devices", str(RANKS)]
    else:
        JointData.train_dataloader = merged_loader
    try:
        cli = JOINT.train([*fit_args(out, workdir), *extra])
    finally:
        for owner, name, original in originals:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
    rank = cli.trainer.global_rank
    (out / f"steps_rank{rank}.json").write_text(json.dumps(USED))
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in cli.model.state_dict().items()}, out / "weights.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
