"""Data of ``unidit fit audio-vae``: the t2a task's embedded sounds or a folder of audio files."""

from __future__ import annotations

from typing import Literal

import numpy as np
from unidit.tokenizers.audio_io import list_audio_files, load_audio
from unidit.tokenizers.audio_vae.data import AudioVAEDataModule


class AudioVAEData(AudioVAEDataModule):
    """Random crops of mono clips for training the audio VAE.

    Args:
        source: ``embedded`` (the procedural sound events of the t2a task, generated from
            ``seed`` and cached) or ``folder`` (every wav/flac/ogg under ``folder``; a
            ``val_fraction`` of the files is held out, chosen by ``seed``).
        folder: the audio folder for source ``folder``.
        sample_rate: Hz; files are resampled on load.
        crop_seconds: length of a training crop (rounded to whole samples; the model
            trims it to a multiple of its hop).
        batch_size: crops per batch.
        crops_per_clip: distinct random crops of each training clip per epoch.
        crop_candidates: each training crop is the loudest of this many random offsets
            (sound events are sparse; crops of background alone teach only the noise floor).
        val_fraction: share of a folder's files held out for validation.
        num_workers: DataLoader workers.
        seed: data generation, crop offsets and shuffling.
        cache_dir: where the embedded clips are cached (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
    """

    def __init__(
        self,
        source: Literal["embedded", "folder"] = "embedded",
        folder: str | None = None,
        sample_rate: int = 16000,
        crop_seconds: float = 1.0,
        batch_size: int = 16,
        crops_per_clip: int = 8,
        crop_candidates: int = 4,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
    ):
        if source not in ("embedded", "folder"):
            raise ValueError(f"data.source must be 'embedded' or 'folder', got {source!r}")
        if source == "folder" and folder is None:
            raise ValueError("data.folder is required for source 'folder' (a folder of wav/flac/ogg files)")
        if crop_seconds <= 0:
            raise ValueError(f"data.crop_seconds must be positive, got {crop_seconds}")
        super().__init__(
            folder=folder,
            sample_rate=sample_rate,
            crop=round(crop_seconds * sample_rate),
            batch_size=batch_size,
            crops_per_clip=crops_per_clip,
            crop_candidates=crop_candidates,
            val_fraction=val_fraction,
            num_workers=num_workers,
            seed=seed,
        )
        self.save_hyperparameters()
        self.source, self.cache_dir = source, cache_dir

    def _embedded(self, split: str) -> list[np.ndarray]:
        from unidit.tasks.t2a.data import embedded_waveforms  # the t2a task owns the procedural sounds

        clips, _ = embedded_waveforms(split, sample_rate=self.sample_rate, seed=self.seed, cache_dir=self.cache_dir)
        return clips

    def load_splits(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.source == "embedded":
            return self._embedded("train"), self._embedded("val")
        return super().load_splits()

    def test_clips(self) -> list[np.ndarray]:
        """Held-out clips for the report: the embedded test split, or a folder's validation files."""
        if self.source == "embedded":
            return self._embedded("test")
        return self.val_split


def folder_clips(folder: str, sample_rate: int) -> list[np.ndarray]:
    """Every audio file under ``folder`` as a mono clip at ``sample_rate``."""
    return [load_audio(path, sample_rate) for path in list_audio_files(folder)]
