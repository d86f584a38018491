"""Readers of the HumanML3D and KIT-ML folder layouts, and windows of normalised features.

Layout (Guo et al., CVPR 2022; the same for the embedded data)::

    <root>/new_joint_vecs/<id>.npy   (T, 263) HumanML3D or (T, 251) KIT-ML features
    <root>/texts/<id>.txt            one caption a line: ``caption#word/POS ...#start#end``
    <root>/Mean.npy, Std.npy         (D,) feature statistics
    <root>/train.txt, val.txt, test.txt   ids, one a line (``M<id>`` = the mirrored copy)

A caption whose start / end (seconds) are not both 0.0 describes only that part of the clip: it
becomes its own clip cut to ``[start * fps, end * fps)`` (HumanML3D's own loader does the same).
Mirrored ``M<id>`` copies are included when their file exists, whether or not the list names them.
Clips shorter than ``min_frames`` are skipped and counted (HumanML3D drops clips under 40 frames);
broken files stop loading with an error naming them, or are counted and skipped with ``skip_bad_samples``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from unidit.training.bad_samples import read_or_skip

FORMATS = {"humanml3d": {"dim": 263, "joints": 22, "fps": 20.0}, "kit": {"dim": 251, "joints": 21, "fps": 12.5}}


@dataclass
class Caption:
    text: str
    tokens: list[str]
    start: float
    end: float


@dataclass
class MotionClip:
    name: str
    features: np.ndarray  # (T, D) float32, not normalised
    captions: list[Caption]


@dataclass
class MotionSplit:
    clips: list[MotionClip]
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count


def parse_caption_line(line: str, path: Path, number: int) -> Caption:
    """One ``caption#tokens#start#end`` line; a malformed or empty one raises naming the file and line."""
    parts = line.strip().split("#")
    if len(parts) != 4:
        raise ValueError(f"{path}:{number}: expected 'caption#word/POS ...#start#end' (4 fields), got {len(parts)}: {line!r}")
    text, tokens, start, end = parts
    if not text.strip():
        raise ValueError(f"{path}:{number}: empty caption (expected text before the first '#')")
    try:
        start_s, end_s = float(start or 0.0), float(end or 0.0)
    except ValueError as error:
        raise ValueError(f"{path}:{number}: start/end must be seconds, got {start!r} and {end!r}") from error
    start_s, end_s = (0.0 if np.isnan(start_s) else start_s), (0.0 if np.isnan(end_s) else end_s)
    return Caption(text.strip(), tokens.split(), start_s, end_s)


def read_captions(path: Path) -> list[Caption]:
    if not path.is_file():
        raise FileNotFoundError(f"missing caption file {path} (expected texts/<id>.txt for every listed clip)")
    lines = [(i + 1, line) for i, line in enumerate(path.read_text().splitlines()) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no caption lines (expected at least one 'caption#tokens#start#end')")
    return [parse_caption_line(line, path, number) for number, line in lines]


def _check_root(root: Path, split: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"motion dataset folder not found: {root}")
    for needed in ("new_joint_vecs", "texts", "Mean.npy", "Std.npy", f"{split}.txt"):
        if not (root / needed).exists():
            raise FileNotFoundError(
                f"{root} is not a HumanML3D / KIT-ML folder: missing {needed} "
                "(expected new_joint_vecs/, texts/, Mean.npy, Std.npy and <split>.txt)"
            )


def read_array(path: Path) -> np.ndarray:
    """``np.load`` without pickles; an unreadable or truncated file raises naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error


def load_features(path: Path, dim: int) -> np.ndarray:
    features = read_array(path)
    if features.ndim != 2 or features.shape[1] != dim:
        raise ValueError(f"{path}: expected features of shape (T, {dim}), got {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{path}: features contain NaN or infinite values")
    return features.astype(np.float32)


def load_split(
    root: str | Path, split: str = "train", kind: str = "humanml3d", min_frames: int = 40, max_frames: int = 196,
    skip_bad_samples: bool = False,
) -> MotionSplit:
    """The clips of one split (whole clips and caption-timed cuts, mirrored copies included).

    A bad entry (unreadable or truncated ``.npy``, wrong feature width, NaN / Inf frames, a missing
    caption file or a caption line that does not parse) stops loading with an error naming the
    file; with ``skip_bad_samples`` it is skipped instead, counted under ``"bad file"`` and printed
    (:func:`unidit.training.bad_samples.read_or_skip`).
    """
    if kind not in FORMATS:
        raise ValueError(f"unknown motion dataset kind {kind!r}; choose from {sorted(FORMATS)}")
    fmt, root = FORMATS[kind], Path(root)
    _check_root(root, split)
    mean, std = read_array(root / "Mean.npy"), read_array(root / "Std.npy")
    for name, stat in (("Mean.npy", mean), ("Std.npy", std)):
        if stat.shape != (fmt["dim"],):
            raise ValueError(f"{root / name}: expected shape ({fmt['dim']},) for {kind}, got {stat.shape}")
    listed = [n.strip() for n in (root / f"{split}.txt").read_text().splitlines() if n.strip()]
    names = list(dict.fromkeys(listed + [f"M{n}" for n in listed if not n.startswith("M")]))
    skipped = {"missing mirrored copy": 0, "too short": 0, "bad file": 0}
    present = []
    for name in names:
        if (root / "new_joint_vecs" / f"{name}.npy").is_file():
            present.append(name)
        elif name.startswith("M") and name not in listed:
            skipped["missing mirrored copy"] += 1
        else:
            raise FileNotFoundError(f"{root / 'new_joint_vecs' / (name + '.npy')} listed in {root / (split + '.txt')} "
                                    "does not exist")

    def read(name: str) -> tuple[list[MotionClip], int]:
        """The clips of one file and how many of its parts were too short."""
        features = load_features(root / "new_joint_vecs" / f"{name}.npy", fmt["dim"])
        clips, short, whole = [], 0, []
        for i, caption in enumerate(read_captions(root / "texts" / f"{name}.txt")):
            if caption.start == 0.0 and caption.end == 0.0:
                whole.append(caption)
                continue
            cut = features[int(caption.start * fmt["fps"]) : int(caption.end * fmt["fps"])]
            if len(cut) < min_frames:
                short += 1
                continue
            clips.append(MotionClip(f"{name}_{i}", cut[:max_frames], [caption]))
        if whole:
            if len(features) < min_frames:
                short += 1
            else:
                clips.append(MotionClip(name, features[:max_frames], whole))
        return clips, short

    per_file, bad = read_or_skip(present, read, f"{root} ({split})", skip_bad_samples, what="motion files")
    skipped["bad file"] = len(bad)
    clips = [clip for file_clips, _ in per_file for clip in file_clips]
    skipped["too short"] = sum(short for _, short in per_file)
    if not clips:
        raise ValueError(f"{root}: split {split!r} has no clip of at least {min_frames} frames (skipped: {skipped})")
    return MotionSplit(clips, mean.astype(np.float32), std.astype(np.float32), skipped)


class MotionWindows(Dataset):
    """Normalised feature windows (window, D) for the VQ-VAE; item ``i`` is a seeded crop of clip ``i % N``."""

    def __init__(self, split: MotionSplit, window: int = 64, crops_per_clip: int = 4, seed: int = 0):
        usable = [c.features for c in split.clips if len(c.features) >= window]
        if not usable:
            raise ValueError(f"no clip is at least {window} frames long (the training window)")
        self.clips = [(f - split.mean) / split.std for f in usable]
        self.window, self.crops, self.seed = window, crops_per_clip, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New crops each epoch (the sampler calls this)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips) * self.crops

    def __getitem__(self, index: int) -> torch.Tensor:
        clip = self.clips[index % len(self.clips)]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        start = int(rng.integers(0, len(clip) - self.window + 1))
        return torch.from_numpy(np.ascontiguousarray(clip[start : start + self.window]))  # (window, D)
