"""t2v embedded data: procedural captioned clips, split, generated once and cached.

Each split is drawn from its own seed stream (``SeedSequence(seed).spawn``) so
asking for ``val`` never renders ``train``; the test split is balanced over the
primary object's (shape, motion) pairs and colours so per-attribute accuracy
is measured on every class.  Clips are uint8 ``(17, 64, 64, 3)``; 17 = 1 + 4k
frames, what a causal video VAE with temporal compression 4 maps to whole
latent frames (LTX-Video, HaCohen et al. 2024, §2.1).  Real formats (WebVid
CSV, MSR-VTT JSON) live in ``real_data.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm
from unidit.tasks.t2v.scenes import (
    COLOUR_NAMES, MOTIONS, NUM_FRAMES, SHAPES, SIZE, ClipSpec, caption, random_clip_spec, render_clip,
)
from unidit.training.model_cache import cache_root

EMBEDDED_VERSION = "t2v-embedded-v3"  # bump whenever generated clips change
SPLITS = ("train", "val", "test")
SPLIT_SIZES = {"train": 1800, "val": 100, "test": 320}


@dataclass
class VideoSet:
    """Captioned clips: ``videos (M, F, H, W, 3)`` uint8 and one caption each.

    ``specs`` holds the scene spec of each embedded clip (empty for real data);
    :meth:`labels` gives the primary object's (shape, colour, motion) classes.
    ``groups`` names the split each clip belongs to where the source says so
    (MSR-VTT's ``split`` field), else it is empty.
    """

    videos: np.ndarray
    captions: list[str]
    specs: list[ClipSpec] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.videos)

    def labels(self) -> np.ndarray:
        """``(M, 3)`` int64: shape, colour and motion class of each clip's primary object."""
        if not self.specs:
            raise ValueError("this set has no scene specs (real data carries no shape/colour/motion labels)")
        return np.array([spec.labels for spec in self.specs], dtype=np.int64).reshape(-1, 3)

    def subset(self, index) -> "VideoSet":
        index = np.asarray(index, dtype=np.int64)
        specs = [self.specs[i] for i in index] if self.specs else []
        groups = [self.groups[i] for i in index] if self.groups else []
        return VideoSet(self.videos[index], [self.captions[i] for i in index], specs, groups)

    def split(self, seed: int = 0, fractions: tuple[float, float] = (0.05, 0.1)) -> dict[str, "VideoSet"]:
        """Train / val / test: by ``groups`` when every clip has one and no split is left empty, else a
        deterministic shuffle cut by the val and test ``fractions`` (at least one clip each from three on)."""
        if self.groups and all(self.groups) and set(self.groups) >= set(SPLITS):
            return {name: self.subset([i for i, g in enumerate(self.groups) if g == name]) for name in SPLITS}
        order = np.random.default_rng(seed).permutation(len(self))
        count = len(self)
        num_val, num_test = (max(1 if count >= 3 else 0, round(f * count)) for f in fractions)
        test, val = order[:num_test], order[num_test : num_test + num_val]
        return {"train": self.subset(order[num_test + num_val :]), "val": self.subset(val), "test": self.subset(test)}


def default_cache_dir() -> Path:
    """``$UNIDIT_CACHE`` or ``~/.cache/unidit`` (the same root as every task)."""
    return cache_root()


def embedded_videos(split: str, *, seed: int = 0, cache_dir: str | os.PathLike | None = None
                    ) -> tuple[list[np.ndarray], list[str]]:
    """The clips (uint8 ``(17, 64, 64, 3)`` each) and captions of an embedded split."""
    videos = embedded_split(split, seed=seed, cache_dir=cache_dir)
    return list(videos.videos), list(videos.captions)


def embedded_split(split: str, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                   size: int | None = None) -> VideoSet:
    """One embedded split with specs, generated once and cached in ``<cache_dir>/t2v/embedded-<hash>/``.

    ``size`` overrides the split's clip count (tests); same arguments give identical arrays.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    count = SPLIT_SIZES[split] if size is None else int(size)
    key = _cache_key(seed, split, count)
    folder = Path(cache_dir or default_cache_dir()) / "t2v" / f"embedded-{key}"
    if (folder / f"{split}.json").is_file():
        try:
            return _read_split(folder, split)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is regenerated below
    videos = generate_split(split, seed=seed, count=count)
    _write_split(folder, split, videos)
    return videos


def _cache_key(seed: int, split: str, count: int) -> str:
    text = json.dumps({"version": EMBEDDED_VERSION, "seed": seed, "split": split, "count": count,
                       "frames": NUM_FRAMES, "size": SIZE}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def generate_split(split: str, *, seed: int = 0, count: int | None = None) -> VideoSet:
    """Render a split (no cache).  Test clips cycle through shape x motion, then colour."""
    count = SPLIT_SIZES[split] if count is None else count
    stream = np.random.SeedSequence(seed).spawn(len(SPLITS))[SPLITS.index(split)]
    rng = np.random.default_rng(stream)
    specs = []
    for i in range(count):
        if split == "test":
            shape, motion = SHAPES[i % len(SHAPES)], MOTIONS[(i // len(SHAPES)) % len(MOTIONS)]
            colour = COLOUR_NAMES[(i // (len(SHAPES) * len(MOTIONS))) % len(COLOUR_NAMES)]
            specs.append(random_clip_spec(rng, shape, colour, motion))  # a rotating circle gets another motion
        else:
            specs.append(random_clip_spec(rng))
    videos = np.zeros((count, NUM_FRAMES, SIZE, SIZE, 3), dtype=np.uint8)  # (M, F, H, W, 3)
    for i, spec in enumerate(tqdm(specs, desc=f"rendering t2v {split} clips", disable=count < 200)):
        videos[i] = render_clip(spec)
    captions = [caption(spec, rng) for spec in specs]
    return VideoSet(videos, captions, specs)


def _write_split(folder: Path, split: str, videos: VideoSet) -> None:
    """Write ``<split>.npz`` then ``<split>.json`` (the marker), each atomically; failures only skip caching."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, write in ((".npz", lambda h: np.savez_compressed(h, videos=videos.videos)),
                              (".json", lambda h: h.write(json.dumps(
                                  {"captions": videos.captions, "specs": [s.to_dict() for s in videos.specs]}
                              ).encode()))):
            handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{split}.", suffix=suffix, delete=False)
            try:
                with handle:
                    write(handle)
                os.replace(handle.name, folder / f"{split}{suffix}")
            finally:
                if os.path.exists(handle.name):
                    os.unlink(handle.name)
    except OSError:
        pass  # caching is an optimisation


def _read_split(folder: Path, split: str) -> VideoSet:
    meta = json.loads((folder / f"{split}.json").read_text())
    with np.load(folder / f"{split}.npz") as arrays:
        videos = arrays["videos"]
    specs = [ClipSpec.from_dict(spec) for spec in meta["specs"]]
    if len(videos) != len(meta["captions"]) or len(specs) != len(videos):
        raise ValueError(f"{folder}: cached {split} split is inconsistent")
    return VideoSet(videos, meta["captions"], specs)
