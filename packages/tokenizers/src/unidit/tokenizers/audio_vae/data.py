"""Random crops of audio clips for training the waveform VAE.

:class:`AudioClipDataset` serves fixed-length crops (1, crop) of mono clips.
Crop ``i`` comes from clip ``i % len(clips)`` at an offset drawn from a generator
seeded by ``(seed, i)``, so the data is a pure function of the seed (no global RNG,
identical with any number of workers); ``crops_per_clip`` sets how many distinct
crops of each clip one epoch holds. Clips shorter than the crop are zero-padded on
the right.

:class:`AudioVAEDataModule` wraps lists of train / val clips, or a folder of audio
files (read with :func:`~unidit.tokenizers.audio_io.load_audio`, split by ``seed``).
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from unidit.tokenizers.audio_io import list_audio_files, load_audio


class AudioClipDataset(Dataset):
    """Crops of ``crop`` samples (1, crop) from mono clips (T,).

    With ``candidates`` > 1 each crop is the loudest (highest mean square) of that many
    random offsets: sound events are sparse in time, and crops holding only the noise
    floor teach the VAE nothing but the noise floor (early training then settles on
    reproducing it everywhere). ``random_offset=False`` takes the centre crop instead.
    """

    def __init__(
        self,
        clips: list[np.ndarray],
        crop: int,
        seed: int = 0,
        crops_per_clip: int = 1,
        random_offset: bool = True,
        candidates: int = 1,
    ):
        if not clips:
            raise ValueError("AudioClipDataset: expected at least one clip, got none")
        if crop <= 0:
            raise ValueError(f"AudioClipDataset: crop must be a positive number of samples, got {crop}")
        if crops_per_clip <= 0 or candidates <= 0:
            raise ValueError(
                f"AudioClipDataset: crops_per_clip and candidates must be positive, got {crops_per_clip}, {candidates}"
            )
        self.clips = [np.asarray(c, dtype=np.float32) for c in clips]
        for index, clip in enumerate(self.clips):
            if clip.ndim != 1 or clip.size == 0:
                raise ValueError(
                    f"AudioClipDataset: clip {index} must be a non-empty mono array (T,), got {clip.shape}"
                )
        self.crop, self.seed, self.crops_per_clip, self.random_offset = crop, seed, crops_per_clip, random_offset
        self.candidates = candidates

    def __len__(self) -> int:
        return len(self.clips) * self.crops_per_clip

    def __getitem__(self, index: int) -> Tensor:
        clip = self.clips[index % len(self.clips)]
        spare = clip.shape[0] - self.crop
        if spare > 0:
            offset = self._offset(clip, spare, index) if self.random_offset else spare // 2
            piece = clip[offset : offset + self.crop]
        else:
            piece = np.pad(clip, (0, -spare))
        return torch.from_numpy(np.ascontiguousarray(piece))[None]  # (1, crop)

    def _offset(self, clip: np.ndarray, spare: int, index: int) -> int:
        offsets = np.random.default_rng((self.seed, index)).integers(0, spare + 1, size=self.candidates)
        energy = [float(np.square(clip[o : o + self.crop]).mean()) for o in offsets]
        return int(offsets[int(np.argmax(energy))])


def split_clips(clips: list[np.ndarray], val_fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Shuffle by ``seed`` and hold out ``val_fraction`` (at least one clip when there are two or more)."""
    order = np.random.default_rng(seed).permutation(len(clips))
    num_val = min(len(clips) - 1, max(1, round(val_fraction * len(clips)))) if len(clips) > 1 else 0
    val = [clips[i] for i in order[:num_val]]
    train = [clips[i] for i in order[num_val:]]
    return train, val or train


class AudioVAEDataModule(pl.LightningDataModule):
    """Train / val crops for the VAE from clip lists or from a folder of wav/flac/ogg files.

    Args:
        train_clips: mono float clips (T,) to train on (or give ``folder``).
        val_clips: held-out clips; without them ``val_fraction`` of the clips is held out.
        folder: a folder of audio files, read recursively and resampled to ``sample_rate``.
        sample_rate: Hz.
        crop: samples per training crop (a multiple of the VAE's hop).
        batch_size: crops per batch.
        crops_per_clip: distinct crops of each training clip per epoch.
        crop_candidates: each training crop is the loudest of this many random offsets.
        val_fraction: share of the clips held out when no val clips are given.
        num_workers: DataLoader workers.
        seed: crop offsets, shuffling and the split.

    Subclasses with other sources override :meth:`load_splits`.
    """

    def __init__(
        self,
        train_clips: list[np.ndarray] | None = None,
        val_clips: list[np.ndarray] | None = None,
        folder: str | None = None,
        sample_rate: int = 16000,
        crop: int = 16000,
        batch_size: int = 16,
        crops_per_clip: int = 16,
        crop_candidates: int = 4,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.train_clips, self.val_clips, self.folder = train_clips, val_clips, folder
        self.sample_rate, self.crop, self.batch_size = sample_rate, crop, batch_size
        self.crops_per_clip, self.crop_candidates, self.val_fraction = crops_per_clip, crop_candidates, val_fraction
        self.num_workers, self.seed = num_workers, seed
        self._splits: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def load_splits(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(train clips, val clips) from the given lists or the folder."""
        if self.train_clips is not None and self.val_clips is not None:
            return list(self.train_clips), list(self.val_clips)
        clips = self.train_clips
        if clips is None:
            if self.folder is None:
                raise ValueError(f"{type(self).__name__}: give train_clips or a folder of audio files")
            files = list_audio_files(self.folder)
            clips = [load_audio(path, self.sample_rate) for path in tqdm(files, desc="reading audio", leave=False)]
        return split_clips(clips, self.val_fraction, self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self._splits is None:
            self._splits = self.load_splits()

    @property
    def train_split(self) -> list[np.ndarray]:
        self.setup()
        return self._splits[0]

    @property
    def val_split(self) -> list[np.ndarray]:
        self.setup()
        return self._splits[1]

    def train_dataloader(self) -> DataLoader:
        dataset = AudioClipDataset(
            self.train_split, self.crop, self.seed, self.crops_per_clip, candidates=self.crop_candidates
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),  # its own stream: the global RNG stays untouched
        )

    def val_dataloader(self) -> DataLoader:
        dataset = AudioClipDataset(self.val_split, self.crop, self.seed + 1, random_offset=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
