"""Clips for training and evaluating the video VAE.

:class:`VideoClipDataset` serves fixed-length windows of uint8 clips held in
memory (from any source, e.g. a folder read by :func:`load_video_folder`) as
float videos ``(3, F, H, W)`` in [-1, 1]: a random temporal window of
``1 + tc*k`` frames and optionally a random spatial crop when training
(the VAE is fully convolutional, so it can train on crops and run on whole
frames), the first frames and a centred crop when evaluating.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from unidit.tokenizers.video_io import list_video_files, read_video


def to_model_range(clips: np.ndarray | Tensor) -> Tensor:
    """uint8 frames ``(..., F, H, W, 3)`` -> float video ``(..., 3, F, H, W)`` in [-1, 1]."""
    x = torch.as_tensor(np.asarray(clips) if not torch.is_tensor(clips) else clips)
    return rearrange(x.float() / 127.5 - 1.0, "... f h w c -> ... c f h w")


def to_uint8(video: Tensor) -> np.ndarray:
    """Float video ``(..., 3, F, H, W)`` in [-1, 1] -> uint8 frames ``(..., F, H, W, 3)``."""
    x = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return rearrange(x, "... c f h w -> ... f h w c").cpu().numpy()


class VideoClipDataset(Dataset):
    """Windows of ``num_frames`` frames from uint8 clips ``(F_i, H, W, 3)``, as ``(3, num_frames, h, w)`` in [-1, 1].

    Args:
        clips: uint8 clips; each needs at least ``num_frames`` frames.
        num_frames: window length (``1 + tc*k`` for the VAE).
        crop_size: side of a square spatial crop (None = whole frames).
        train: random window start and crop position (drawn from torch's global
            generator, so ``seed_everything`` makes them repeatable); otherwise the
            first frames and a centred crop.
    """

    def __init__(self, clips: Sequence[np.ndarray], num_frames: int, crop_size: int | None = None, train: bool = True):
        if not len(clips):
            raise ValueError("VideoClipDataset needs at least one clip")
        for i, clip in enumerate(clips):
            if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
                raise ValueError(f"clip {i}: expected uint8 frames (F, H, W, 3), got {clip.dtype} {clip.shape}")
            if clip.shape[0] < num_frames:
                raise ValueError(f"clip {i} has {clip.shape[0]} frames, expected at least {num_frames}")
            if crop_size is not None and min(clip.shape[1:3]) < crop_size:
                raise ValueError(f"clip {i} of size {clip.shape[1:3]} is smaller than crop_size {crop_size}")
        self.clips = list(clips)
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.train = train

    def __len__(self) -> int:
        return len(self.clips)

    def _offset(self, span: int, keep: int) -> int:
        if span <= keep:
            return 0
        return int(torch.randint(0, span - keep + 1, ())) if self.train else (span - keep) // 2

    def __getitem__(self, index: int) -> Tensor:
        clip = self.clips[index]
        frames, height, width = clip.shape[:3]
        start = int(torch.randint(0, frames - self.num_frames + 1, ())) if self.train else 0
        window = clip[start : start + self.num_frames]  # (F, H, W, 3)
        if self.crop_size is not None:
            top, left = self._offset(height, self.crop_size), self._offset(width, self.crop_size)
            window = window[:, top : top + self.crop_size, left : left + self.crop_size]
        return to_model_range(np.ascontiguousarray(window))  # (3, F, h, w)


def load_video_folder(
    folder: str | os.PathLike,
    *,
    size: int | tuple[int, int],
    min_frames: int,
    max_frames: int | None = None,
    fps: float | None = None,
) -> tuple[list[np.ndarray], list[Path]]:
    """Decode every video in ``folder`` (resized/centre-cropped to ``size``), up to ``max_frames`` frames each.

    Raises ValueError naming the file when a video has fewer than ``min_frames`` frames.
    """
    paths = list_video_files(folder)
    clips = []
    for path in tqdm(paths, desc=f"reading videos from {folder}", unit="video", disable=len(paths) < 4):
        clip = read_video(path, size=size, fps=fps, max_frames=max_frames)
        if clip.shape[0] < min_frames:
            raise ValueError(f"{path} has {clip.shape[0]} frames, expected at least {min_frames}")
        clips.append(clip)
    return clips, paths
