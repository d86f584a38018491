"""Shared fixtures of the motion task's tests: a small embedded set, a tiny VQ-VAE, its codes."""

from __future__ import annotations

import pytest
import torch
from unidit.tasks.motion.data import load_split
from unidit.tasks.motion.datamodule import MotionData
from unidit.tasks.motion.synthetic import EmbeddedMotion, embedded_dataset
from unidit.tasks.motion.task import MotionTask
from unidit.tokenizers.motion import MotionVQVAE, motion_vq_config

SMALL = EmbeddedMotion(seed=5, num_train=24, num_val=4, num_test=8)
CODES = 64  # the tiny VQ-VAE's codebook


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def vqvae_dir(cache) -> str:
    """A tiny (untrained) VQ-VAE carrying the embedded set's Mean / Std."""
    torch.manual_seed(0)
    split = load_split(embedded_dataset(SMALL, cache), "train")
    vq = MotionVQVAE(motion_vq_config("tiny"))
    vq.set_statistics(torch.from_numpy(split.mean), torch.from_numpy(split.std))
    folder = cache / "vq" / "model"
    vq.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def data(vqvae_dir, cache) -> MotionData:
    data = MotionData(seed=SMALL.seed, num_train=SMALL.num_train, num_val=SMALL.num_val, num_test=SMALL.num_test,
                      vqvae_dir=vqvae_dir, batch_size=8, cache_dir=str(cache))
    data.setup("fit")
    return data


def tiny_task(vqvae_dir: str | None, data: MotionData | None = None, **options) -> MotionTask:
    torch.manual_seed(0)
    task = MotionTask(vqvae=vqvae_dir, preset="tiny", codebook_size=CODES, warmup_steps=1, **options)
    task.setup("fit")
    if data is not None:
        task.set_code_counts(data.code_counts(CODES))
    return task


