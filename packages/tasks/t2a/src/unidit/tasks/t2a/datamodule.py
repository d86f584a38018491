"""Lightning data module for t2a: clips encoded once by the frozen audio VAE, then latents.

EzAudio (Hai et al. 2024, §4) trains its DiT on pre-computed VAE latents.  Here
every clip is encoded once (posterior means, batches of equal-length clips),
the latents are cached on disk under a key made of the clips' samples and the
VAE's weights, and training batches hold latents ``(C, T_i)`` of their true
lengths (the task packs and pads them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from unidit.tasks.t2a.data import SPLITS, ClipSet, default_cache_dir, embedded_clips
from unidit.training.latent_codec import encode_clips
from unidit.tasks.t2a.real_data import load_audiocaps, load_clotho
from unidit.tokenizers.audio_vae import AudioVAE
from unidit.training.latent_data import FrozenVAEData, cached_latents, latents_path


class LatentClipDataset(Dataset):
    """Items ``{"latent": (C, T) float32 tensor, "caption": str}``."""

    def __init__(self, latents: list[Tensor], captions: list[str]) -> None:
        if len(latents) != len(captions):
            raise ValueError(f"{len(latents)} latents but {len(captions)} captions")
        self.latents, self.captions = latents, captions

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict:
        return {"latent": self.latents[index], "caption": self.captions[index]}


def collate_latent_clips(items: list[dict]) -> dict:
    """Keep latents of different lengths as a list: ``{"latents": [(C, T_i)], "captions": [str]}``."""
    return {"latents": [item["latent"] for item in items], "captions": [item["caption"] for item in items]}


class T2AData(FrozenVAEData, pl.LightningDataModule):
    """Captioned clips as VAE latents.

    Args:
        source: ``embedded`` (procedural sound events, generated from ``seed`` and cached),
            ``audiocaps`` (``audiocap_id,youtube_id,start_time,caption`` CSVs) or
            ``clotho`` (``file_name,caption_1..caption_5`` CSVs).
        root: audio folder for ``audiocaps`` / ``clotho`` (files in ``root`` or ``root/<split>``).
        train_csv: training CSV (relative to ``root`` or absolute).
        val_csv: validation CSV; None = 5% of the training rows, split by ``seed``.
        test_csv: test CSV (optional).
        vae_dir: audio VAE folder that encodes the clips; None = the VAE of the model being
            trained (``model.vae``), the usual case. (Not named ``vae``: Lightning merges model and
            data hyper-parameters for logging and refuses one name with two values.)
        sample_rate: Hz of the clips; None = the VAE's.
        max_seconds: real clips are cropped to this many seconds.
        all_captions: Clotho: one pair per caption (5 per clip) instead of only the first.
        seed: generation / split / shuffling seed.
        num_train: embedded training clips.
        num_val: embedded validation clips.
        test_per_kind: embedded test clips per event kind.
        batch_size: clips per batch.
        bucket_by_length: training batches hold clips of similar length (shuffled pools of 32 batches
            sorted by length), so less of each padded batch is padding.
        encode_batch_size: clips per VAE encoder call.
        num_workers: DataLoader workers.
        cache_dir: cache of embedded clips and latents (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        skip_bad_samples: real data: skip (count and print) unreadable files and bad rows.
    """

    vae_class = AudioVAE
    vae_missing = ("t2a needs an audio VAE: set model.vae (or data.vae_dir) to a `unidit fit audio-vae` export folder "
                   "(<run>/model)")

    def __init__(
        self,
        source: Literal["embedded", "audiocaps", "clotho"] = "embedded",
        root: str | None = None,
        train_csv: str | None = None,
        val_csv: str | None = None,
        test_csv: str | None = None,
        vae_dir: str | None = None,
        sample_rate: int | None = None,
        max_seconds: float = 10.0,
        all_captions: bool = True,
        seed: int = 0,
        num_train: int = 3000,
        num_val: int = 100,
        test_per_kind: int = 24,
        batch_size: int = 16,
        bucket_by_length: bool = True,
        encode_batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        skip_bad_samples: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.clips: dict[str, ClipSet] = {}
        self.latents: dict[str, list[Tensor]] = {}
        self._vae = None

    # -- waveforms ----------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        if self.hparams.sample_rate is not None:
            return int(self.hparams.sample_rate)
        return int(self.vae().sample_rate)

    def load_clips(self) -> dict[str, ClipSet]:
        """Waveforms and captions of every split (no VAE needed once ``sample_rate`` is known)."""
        if self.clips:
            return self.clips
        h, rate = self.hparams, self.sample_rate
        if h.source == "embedded":
            sizes = dict(num_train=h.num_train, num_val=h.num_val, test_per_kind=h.test_per_kind)
            self.clips = {s: embedded_clips(s, sample_rate=rate, seed=h.seed, cache_dir=h.cache_dir, **sizes)
                          for s in SPLITS}
            return self.clips
        if h.source not in ("audiocaps", "clotho"):
            raise ValueError(f"data.source must be one of embedded, audiocaps, clotho; got {h.source!r}")
        if h.root is None or h.train_csv is None:
            raise ValueError(f"data.root and data.train_csv are required for source {h.source!r}")
        tables = {"train": h.train_csv, "val": h.val_csv, "test": h.test_csv}
        for split, table in tables.items():
            if table is not None:
                self.clips[split] = self._read_real(table, split)
        if "val" not in self.clips:
            self.clips["train"], self.clips["val"] = _split_off(self.clips["train"], 0.05, h.seed)
        return self.clips

    def _read_real(self, table: str, split: str) -> ClipSet:
        h = self.hparams
        options = dict(split=split, sample_rate=self.sample_rate, max_seconds=h.max_seconds,
                       skip_bad_samples=h.skip_bad_samples)
        if h.source == "audiocaps":
            return load_audiocaps(h.root, table, **options)
        return load_clotho(h.root, table, all_captions=h.all_captions, **options)

    # -- latents ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        self.load_clips()
        if stage in ("fit", "validate", None) and not self.latents:
            vae = self.vae()
            if vae.sample_rate != self.sample_rate:
                raise ValueError(f"data.sample_rate {self.sample_rate} differs from the VAE's {vae.sample_rate} Hz")
            self.latents = {split: self._cached_latents(self.clips[split]) for split in ("train", "val")}

    def _cached_latents(self, clips: ClipSet) -> list[Tensor]:
        vae = self.vae()
        path = latents_path(Path(self.hparams.cache_dir or default_cache_dir()) / "t2a", vae,
                            (np.ascontiguousarray(wave, dtype=np.float32).tobytes() for wave in clips.waveforms))
        return cached_latents(path, len(clips),
                              lambda: encode_clips(vae, clips.waveforms, self.hparams.encode_batch_size, progress=True))

    # -- loaders --------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        dataset = LatentClipDataset(self.latents["train"], self.clips["train"].captions)
        return self.latent_train_loader(dataset, collate_latent_clips)

    def val_dataloader(self) -> DataLoader:
        dataset = LatentClipDataset(self.latents["val"], self.clips["val"].captions)
        return self.latent_val_loader(dataset, collate_latent_clips)


def _split_off(clips: ClipSet, fraction: float, seed: int) -> tuple[ClipSet, ClipSet]:
    """Cut a shuffled ``fraction`` (at least one clip) off ``clips``: (rest, split off)."""
    order = np.random.default_rng(seed).permutation(len(clips))
    count = max(1, round(fraction * len(clips))) if len(clips) > 1 else 0
    return clips.subset(np.sort(order[count:])), clips.subset(np.sort(order[:count]))
