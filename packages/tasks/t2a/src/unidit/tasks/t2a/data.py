"""The embedded t2a clips: procedural sound events, split, synthesised once and cached.

Sizes follow the roles of AudioCaps' splits (Kim et al. 2019) at toy scale: a
training split drawn uniformly over event kinds, a small validation split, and
a test split balanced over kinds (``test_per_kind`` clips whose first event is
each kind) so per-kind accuracy means the same for every kind.  Real data
(AudioCaps / Clotho CSVs) is read by :mod:`unidit.tasks.t2a.real_data`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from unidit.tasks.t2a.sounds import KINDS, ClipSpec, caption, random_clip, synthesise
from unidit.training.model_cache import cache_root

EMBEDDED_VERSION = "t2a-embedded-v1"  # bump whenever generated clips change
SPLITS = ("train", "val", "test")


@dataclass
class ClipSet:
    """Clips with captions: ``waveforms[i]`` float32 mono (T_i,) in [-1, 1] at ``sample_rate``.

    ``specs[i]`` is the procedural spec of an embedded clip (None for real data).
    """

    waveforms: list[np.ndarray]
    captions: list[str]
    sample_rate: int
    specs: list[ClipSpec | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.waveforms)

    def subset(self, index) -> "ClipSet":
        """The clips at ``index`` (a sequence of ints), in that order."""
        index = [int(i) for i in index]
        specs = [self.specs[i] for i in index] if self.specs else []
        return ClipSet([self.waveforms[i] for i in index], [self.captions[i] for i in index], self.sample_rate, specs)

    @property
    def seconds(self) -> list[float]:
        return [len(wave) / self.sample_rate for wave in self.waveforms]


@dataclass(frozen=True)
class ClipSplits:
    """Parameters of the embedded data; :meth:`key` names the cache files."""

    seed: int = 0
    sample_rate: int = 16000
    num_train: int = 1200
    num_val: int = 100
    test_per_kind: int = 24

    def key(self, split: str) -> str:
        sizes = {"train": self.num_train, "val": self.num_val, "test": self.test_per_kind}
        text = json.dumps({"version": EMBEDDED_VERSION, "seed": self.seed, "sample_rate": self.sample_rate,
                           "split": split, "size": sizes[split]}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$UNIDIT_CACHE`` or ``~/.cache/unidit`` (as shape3d)."""
    return cache_root()


def embedded_clips(
    split: str,
    *,
    sample_rate: int = 16000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    num_train: int = 1200,
    num_val: int = 100,
    test_per_kind: int = 24,
) -> ClipSet:
    """One split of the embedded clips with their specs, generated once and cached.

    Same arguments -> identical clips.  The cache is
    ``<cache_dir>/t2a/embedded-<split>-<hash>.npz`` (int16 samples, all clips
    concatenated, with their lengths) plus a ``.json`` of captions and specs,
    written to temporary files first and renamed into place.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    params = ClipSplits(seed, sample_rate, num_train, num_val, test_per_kind)
    stem = Path(cache_dir or default_cache_dir()) / "t2a" / f"embedded-{split}-{params.key(split)}"
    try:
        return _read_cache(stem, sample_rate)
    except (OSError, ValueError, KeyError):
        pass  # missing or damaged: generate below
    clips = _generate(params, split)
    _write_cache(stem, clips)
    return clips


def embedded_waveforms(
    split: str, *, sample_rate: int = 16000, seed: int = 0, cache_dir: str | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """The embedded clips of a split as float32 mono waveforms in [-1, 1] and their captions."""
    clips = embedded_clips(split, sample_rate=sample_rate, seed=seed, cache_dir=cache_dir)
    return clips.waveforms, clips.captions


def _generate(params: ClipSplits, split: str) -> ClipSet:
    sequence = np.random.SeedSequence([params.seed, SPLITS.index(split)])
    rng = np.random.default_rng(sequence)
    if split == "test":
        kinds = [KINDS[i % len(KINDS)] for i in range(params.test_per_kind * len(KINDS))]
    else:
        kinds = [None] * (params.num_train if split == "train" else params.num_val)
    specs = [random_clip(rng, kind) for kind in kinds]
    captions = [caption(spec, rng) for spec in specs]
    waveforms = [_to_pcm_grid(synthesise(spec, rng, params.sample_rate))
                 for spec in tqdm(specs, desc=f"synthesising t2a {split} clips", leave=False)]
    return ClipSet(waveforms, captions, params.sample_rate, specs)


def _to_pcm_grid(audio: np.ndarray) -> np.ndarray:
    """Round to the int16 grid the cache stores, so fresh and cached clips agree bit for bit (no -0.0)."""
    return _from_pcm(_to_pcm(audio))


def _to_pcm(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def _from_pcm(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / np.float32(32767)


def _write_cache(stem: Path, clips: ClipSet) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    samples = np.concatenate(clips.waveforms)  # (sum T_i,)
    pcm = _to_pcm(samples)
    lengths = np.array([len(wave) for wave in clips.waveforms], dtype=np.int64)
    meta = {"version": EMBEDDED_VERSION, "sample_rate": clips.sample_rate, "captions": clips.captions,
            "specs": [spec.to_dict() for spec in clips.specs]}
    tmp_arrays = tmp_meta = None
    try:
        handle, tmp_arrays = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".npz")
        with os.fdopen(handle, "wb") as file:
            np.savez(file, pcm=pcm, lengths=lengths)
        handle, tmp_meta = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".json")
        with os.fdopen(handle, "w") as file:
            json.dump(meta, file)
        os.replace(tmp_meta, stem.with_suffix(".json"))
        os.replace(tmp_arrays, stem.with_suffix(".npz"))  # last: its presence marks a complete cache
    except OSError:
        pass  # caching is an optimisation
    finally:
        for name in (tmp_arrays, tmp_meta):
            if name and Path(name).exists():
                Path(name).unlink(missing_ok=True)


def _read_cache(stem: Path, sample_rate: int) -> ClipSet:
    meta = json.loads(stem.with_suffix(".json").read_text())
    with np.load(stem.with_suffix(".npz")) as arrays:
        pcm, lengths = arrays["pcm"], arrays["lengths"]
    if meta["version"] != EMBEDDED_VERSION or len(lengths) != len(meta["captions"]) or lengths.sum() != len(pcm):
        raise ValueError(f"{stem}: inconsistent cache")
    samples = _from_pcm(pcm)
    waveforms = np.split(samples, np.cumsum(lengths)[:-1])
    specs = [ClipSpec.from_dict(spec) for spec in meta["specs"]]
    return ClipSet(list(waveforms), list(meta["captions"]), sample_rate, specs)
