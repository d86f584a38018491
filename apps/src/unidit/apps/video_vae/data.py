"""Clips for ``unidit fit video-vae``: the t2v task's embedded videos or a folder of videos.

Training windows are short random space-time crops (``train_frames`` frames of
``train_crop`` x ``train_crop``): the VAE is fully convolutional and causal, so
it learns the same local filters several times faster than on whole clips,
and it is validated and tested on whole ``num_frames`` x ``size`` clips.
"""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader
from unidit.tokenizers.video_vae.data import VideoClipDataset, load_video_folder
from unidit.training.resumable_sampler import ResumableDataLoader, ResumableSampler

SPLITS = ("train", "val", "test")


class VideoVAEData(pl.LightningDataModule):
    """Uint8 clips ``(F, size, size, 3)`` per split, served as videos in [-1, 1].

    Args:
        source: ``embedded`` (the t2v task's procedural clips, generated from ``seed`` and
            cached) or ``folder`` (every mp4/webm/mkv/avi in ``folder``, split by ``seed``).
        folder: the video folder for ``folder``.
        num_frames: frames of validation/test clips (``1 + tc*k``).
        size: frame side after resizing (shorter side) and centre-cropping.
        batch_size: clips per training batch.
        seed: generation / split seed.
        cache_dir: where embedded data is cached (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        train_frames: frames of a training window (``1 + tc*k``; None = ``num_frames``).
        train_crop: side of a random square training crop (None = whole frames).
        max_frames: frames read from the start of each folder video.
        fps: resample folder videos to this frame rate (None = keep theirs).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        source: Literal["embedded", "folder"] = "embedded",
        folder: str | None = None,
        num_frames: int = 17,
        size: int = 64,
        batch_size: int = 8,
        seed: int = 0,
        cache_dir: str | None = None,
        train_frames: int | None = None,
        train_crop: int | None = None,
        max_frames: int = 65,
        fps: float | None = None,
        num_workers: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.clips: dict[str, list[np.ndarray]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.clips:
            return
        h = self.hparams
        if h.source == "embedded":
            from unidit.tasks.t2v.data import embedded_videos

            self.clips = {split: embedded_videos(split, seed=h.seed, cache_dir=h.cache_dir)[0] for split in SPLITS}
        elif h.source == "folder":
            if h.folder is None:
                raise ValueError("data.folder is required for source 'folder' (a folder of mp4/webm/mkv/avi files)")
            clips, _ = load_video_folder(
                h.folder, size=h.size, min_frames=h.num_frames, max_frames=h.max_frames, fps=h.fps
            )
            self.clips = split_clips(clips, h.seed)
        else:
            raise ValueError(f"data.source must be 'embedded' or 'folder', got {h.source!r}")

    def test_clips(self) -> list[np.ndarray]:
        """The test split cut to the first ``num_frames`` frames."""
        self.setup("test")
        return [clip[: self.hparams.num_frames] for clip in self.clips["test"]]

    def train_clips(self) -> list[np.ndarray]:
        """The training split cut to the first ``num_frames`` frames (for latent statistics)."""
        self.setup("fit")
        return [clip[: self.hparams.num_frames] for clip in self.clips["train"]]

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        dataset = VideoClipDataset(self.clips["train"], h.train_frames or h.num_frames, h.train_crop, train=True)
        return ResumableDataLoader(  # the clip order resumes exactly under --ckpt_path last; shards under DDP
            dataset,
            batch_size=min(h.batch_size, len(dataset)),
            sampler=ResumableSampler(dataset, seed=h.seed, shuffle=True, drop_last=True),
            drop_last=True,
            num_workers=h.num_workers,
            generator=torch.Generator().manual_seed(h.seed),
        )

    def val_dataloader(self) -> DataLoader:
        h = self.hparams
        dataset = VideoClipDataset(self.clips["val"], h.num_frames, None, train=False)
        return DataLoader(dataset, batch_size=h.batch_size, shuffle=False, num_workers=h.num_workers)


def split_clips(clips: list[np.ndarray], seed: int) -> dict[str, list[np.ndarray]]:
    """Shuffle by ``seed`` and hold out 10% (at least one clip each) for val and test.

    With fewer than three clips every split gets all of them (nothing can be held out).
    """
    if len(clips) < 3:
        print(f"only {len(clips)} video(s): validating and testing on the training clips", flush=True)
        return {split: list(clips) for split in SPLITS}
    order = np.random.default_rng(seed).permutation(len(clips))
    held = max(1, round(0.1 * len(clips)))
    picked = {"test": order[:held], "val": order[held : 2 * held], "train": order[2 * held :]}
    return {split: [clips[i] for i in picked[split]] for split in SPLITS}
