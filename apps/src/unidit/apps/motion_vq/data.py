"""Data of ``unidit fit motion-vq``: the motion task's embedded clips or a HumanML3D / KIT-ML folder.

Training items are random windows of normalised features (T2M-GPT, Zhang et al., CVPR 2023, §4.1,
trains its VQ-VAE on 64-frame windows of HumanML3D; the embedded clips average about 80 frames, so
the default window here is 32). The crop offsets change every epoch: the sampler passes Lightning's
epoch on to :class:`~unidit.tasks.motion.data.MotionWindows`. Validation uses fixed windows of the
validation split; the report evaluates whole clips of the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader
from unidit.tasks.motion.data import FORMATS, MotionSplit, MotionWindows, load_split
from unidit.training.resumable_sampler import ResumableDataLoader, ResumableSampler

SPLITS = ("train", "val", "test")


class MotionVQData(pl.LightningDataModule):
    """Normalised feature windows ``(window, D)`` for the motion VQ-VAE.

    Args:
        source: ``embedded`` (the motion task's procedural clips, generated from ``seed`` and cached)
            or ``folder`` (a HumanML3D / KIT-ML folder with ``new_joint_vecs/``, ``texts/``,
            ``Mean.npy``, ``Std.npy`` and ``train.txt`` / ``val.txt`` / ``test.txt``).
        folder: the dataset folder for source ``folder``.
        kind: ``humanml3d`` (263-d features, 22 joints) or ``kit`` (251-d, 21 joints); the model's
            ``vqvae.feature_dim`` / ``num_joints`` must match.
        window: frames per training window (a multiple of the 4 frames per code); shorter clips
            are left out of training.
        min_frames: clips (or caption-timed cuts) shorter than this are skipped and counted.
        max_frames: clips are cut to their first ``max_frames`` frames (HumanML3D: 196).
        batch_size: windows per batch.
        crops_per_clip: windows drawn from each training clip per epoch.
        num_workers: DataLoader workers.
        seed: embedded data generation, crop offsets and shuffling.
        cache_dir: where the embedded data is cached (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
    """

    def __init__(
        self,
        source: Literal["embedded", "folder"] = "embedded",
        folder: str | None = None,
        kind: Literal["humanml3d", "kit"] = "humanml3d",
        window: int = 32,
        min_frames: int = 17,
        max_frames: int = 196,
        batch_size: int = 32,
        crops_per_clip: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
    ):
        super().__init__()
        if source not in ("embedded", "folder"):
            raise ValueError(f"data.source must be 'embedded' or 'folder', got {source!r}")
        if source == "folder" and not folder:
            raise ValueError("data.folder is required for source 'folder' (a HumanML3D / KIT-ML folder)")
        if source == "embedded" and kind != "humanml3d":
            raise ValueError(f"data.kind {kind!r}: the embedded clips are HumanML3D features (kind 'humanml3d')")
        if kind not in FORMATS:
            raise ValueError(f"data.kind must be one of {sorted(FORMATS)}, got {kind!r}")
        if window < 4 or window % 4:
            raise ValueError(f"data.window must be a positive multiple of 4 frames (one code), got {window}")
        self.save_hyperparameters()
        self.splits: dict[str, MotionSplit] = {}

    @property
    def feature_dim(self) -> int:
        return FORMATS[self.hparams.kind]["dim"]

    @property
    def num_joints(self) -> int:
        return FORMATS[self.hparams.kind]["joints"]

    @property
    def root(self) -> Path:
        """The HumanML3D-layout folder read (the embedded one is generated on first use)."""
        h = self.hparams
        if h.source == "embedded":
            from unidit.tasks.motion.synthetic import EmbeddedMotion, embedded_dataset

            return embedded_dataset(EmbeddedMotion(seed=h.seed), cache_dir=h.cache_dir)
        return Path(h.folder)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        h, root = self.hparams, self.root
        for split in SPLITS:
            self.splits[split] = load_split(root, split, h.kind, min_frames=h.min_frames, max_frames=h.max_frames)
            skipped = {reason: n for reason, n in self.splits[split].skipped.items() if n and reason != "missing mirrored copy"}
            if skipped:
                print(f"{root} {split}: skipped {skipped}", flush=True)

    @property
    def mean(self) -> np.ndarray:
        """The dataset's feature Mean (D,) (copied into the model at the start of training)."""
        self.setup()
        return self.splits["train"].mean

    @property
    def std(self) -> np.ndarray:
        self.setup()
        return self.splits["train"].std

    def test_clips(self) -> list[torch.Tensor]:
        """De-normalised test clips, each (T, D), for the report."""
        self.setup("test")
        return [torch.from_numpy(c.features) for c in self.splits["test"].clips]

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        dataset = MotionWindows(self.splits["train"], h.window, h.crops_per_clip, seed=h.seed)
        batch_size = min(h.batch_size, len(dataset))
        return ResumableDataLoader(  # the window order resumes exactly under --ckpt_path last
            dataset,
            batch_size=batch_size,
            sampler=ResumableSampler(dataset, seed=h.seed, shuffle=True, drop_last=True, batch_size=batch_size),
            drop_last=True,
            num_workers=h.num_workers,
            generator=torch.Generator().manual_seed(h.seed),
        )

    def val_dataloader(self) -> DataLoader:
        h = self.hparams
        dataset = MotionWindows(self.splits["val"], h.window, crops_per_clip=1, seed=h.seed + 1)  # epoch stays 0
        return DataLoader(dataset, batch_size=h.batch_size, shuffle=False, num_workers=h.num_workers)
