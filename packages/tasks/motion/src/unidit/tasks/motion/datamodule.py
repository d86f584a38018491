"""Lightning data module for the motion task: clips encoded once by the frozen motion VQ-VAE, then codes.

MoMask (Guo et al., CVPR 2024, §4) and T2M-GPT train their generators on the
codes of a frozen VQ-VAE. Every clip of a split (the embedded procedural set,
or a HumanML3D / KIT-ML folder read by :func:`~unidit.tasks.motion.data.load_split`)
is encoded once, whole, normalised by the VQ-VAE's own Mean / Std; the codes
are cached on disk under a key made of the features and the VQ-VAE's weights.
A training item is one clip's codes with one of its captions, drawn anew each
epoch from ``(seed, epoch, index)``. Training batches are bucketed by length.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from unidit.tasks.motion.data import MotionSplit, load_split
from unidit.tasks.motion.synthetic import EmbeddedMotion, embedded_dataset
from unidit.tasks.motion.task import encode_motion, load_frozen_vqvae
from unidit.training.frozen_tokenizer import frozen_tokenizer
from unidit.training.latent_data import write_npz_cache
from unidit.training.model_cache import cache_root
from unidit.training.resumable_sampler import ResumableDataLoader, ResumableSampler


class MotionCodeDataset(Dataset):
    """Items ``{"codes": (N,) long tensor, "caption": str}``; the caption is one of the clip's, per epoch."""

    def __init__(self, codes: list[Tensor], captions: list[list[str]], seed: int = 0, draw: bool = True) -> None:
        if len(codes) != len(captions):
            raise ValueError(f"{len(codes)} code sequences but {len(captions)} caption lists")
        self.codes, self.captions, self.seed, self.draw = codes, captions, seed, draw
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.codes)

    def set_epoch(self, epoch: int) -> None:
        """Captions are drawn per ``(seed, epoch, index)`` (the sampler calls this each epoch)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        texts = self.captions[index]
        choice = int(np.random.default_rng((self.seed, self.epoch, index)).integers(len(texts))) if self.draw else 0
        return {"codes": self.codes[index], "caption": texts[choice]}


def collate_codes(items: list[dict]) -> dict:
    """``{"codes": [(N_i,)], "captions": [str]}`` (the task pads)."""
    return {"codes": [item["codes"] for item in items], "captions": [item["caption"] for item in items]}


class MotionData(pl.LightningDataModule):
    """Captioned motions as VQ codes.

    Args:
        source: ``embedded`` (procedural skeleton motions, generated from ``seed`` and cached),
            ``humanml3d`` or ``kit`` (a folder with new_joint_vecs/, texts/, Mean.npy, Std.npy, split lists).
        root: the HumanML3D / KIT-ML folder.
        vqvae_dir: motion VQ-VAE folder that encodes the clips; None = the model's (``model.vqvae``).
        seed: generation / caption-draw / shuffling seed.
        num_train / num_val / num_test: embedded clips per split.
        min_frames / max_frames: clips shorter are skipped (counted), longer are cut (HumanML3D's own
            loader drops clips under 40 frames; 17 keeps the short embedded actions, as `unidit fit motion-vq` does).
        batch_size: clips per batch.
        num_workers: DataLoader workers.
        cache_dir: cache of embedded data, codes and the evaluator (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        skip_bad_samples: real data: skip (count and print) unreadable files, wrong widths, NaN frames and
            caption files that do not parse, instead of stopping at the first.
    """

    def __init__(
        self,
        source: Literal["embedded", "humanml3d", "kit"] = "embedded",
        root: str | None = None,
        vqvae_dir: str | None = None,
        seed: int = 0,
        num_train: int = 600,
        num_val: int = 50,
        num_test: int = 100,
        min_frames: int = 17,
        max_frames: int = 196,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_dir: str | None = None,
        skip_bad_samples: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, MotionSplit] = {}
        self.codes: dict[str, list[Tensor]] = {}
        self._vqvae = None

    # -- clips ------------------------------------------------------------------------
    def folder(self) -> Path:
        h = self.hparams
        if h.source == "embedded":
            params = EmbeddedMotion(seed=h.seed, num_train=h.num_train, num_val=h.num_val, num_test=h.num_test)
            return embedded_dataset(params, h.cache_dir)
        if h.source not in ("humanml3d", "kit"):
            raise ValueError(f"data.source must be one of embedded, humanml3d, kit; got {h.source!r}")
        if h.root is None:
            raise ValueError(f"data.root is required for source {h.source!r} (the dataset folder)")
        return Path(h.root)

    def load_clips(self, splits: tuple[str, ...] = ("train", "val")) -> dict[str, MotionSplit]:
        kind = "kit" if self.hparams.source == "kit" else "humanml3d"
        for split in splits:
            if split not in self.splits:
                self.splits[split] = load_split(self.folder(), split, kind, self.hparams.min_frames,
                                                self.hparams.max_frames, self.hparams.skip_bad_samples)
        return self.splits

    # -- codes ------------------------------------------------------------------------------
    def vqvae(self):
        """The frozen VQ-VAE: ``data.vqvae_dir`` if given, else the model's (``model.vqvae``)."""
        if self._vqvae is None:
            self._vqvae = frozen_tokenizer(
                self, self.hparams.vqvae_dir, lambda folder: load_frozen_vqvae(folder, _codebook_size(folder)),
                "vqvae", "the motion task needs a motion VQ-VAE: set model.vqvae (or data.vqvae_dir) to a "
                "`unidit fit motion-vq` export folder (<run>/model)")
        return self._vqvae

    def attach_vqvae(self, vqvae) -> None:
        """Use this (already loaded) VQ-VAE, e.g. a loaded task's, when ``data.vqvae_dir`` is None."""
        if self.hparams.vqvae_dir is None:
            self._vqvae = vqvae

    def setup(self, stage: str | None = None) -> None:
        self.load_clips()
        if not self.codes:
            self.codes = {split: self._cached_codes(self.splits[split]) for split in ("train", "val")}

    def _cached_codes(self, split: MotionSplit) -> list[Tensor]:
        vq = self.vqvae()
        digest = hashlib.sha256()
        for tensor in vq.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        for clip in split.clips:
            digest.update(np.ascontiguousarray(clip.features).tobytes())
        path = cache_root(self.hparams.cache_dir) / "motion" / f"codes-{digest.hexdigest()[:16]}.npz"
        try:
            with np.load(path) as arrays:
                flat, lengths = arrays["codes"], arrays["lengths"]
            if len(lengths) == len(split.clips) and lengths.sum() == len(flat):
                return list(torch.from_numpy(flat).long().split(lengths.tolist()))
        except (OSError, ValueError, KeyError):
            pass  # missing or damaged: encode below
        codes = encode_motion(vq, [c.features for c in split.clips], [c.name for c in split.clips])
        _write_codes(path, codes)
        return codes

    def code_counts(self, codebook_size: int) -> Tensor:
        """How often each code occurs in the training split ``(K,)`` (the priority schedule's statistics)."""
        if "train" not in self.codes:
            self.setup("fit")
        return torch.bincount(torch.cat(self.codes["train"]), minlength=codebook_size)[:codebook_size]

    # -- loaders ---------------------------------------------------------------------------
    def _dataset(self, split: str, draw: bool) -> MotionCodeDataset:
        captions = [[c.text for c in clip.captions] for clip in self.splits[split].clips]
        return MotionCodeDataset(self.codes[split], captions, self.hparams.seed, draw)

    def train_dataloader(self) -> DataLoader:
        h, dataset = self.hparams, self._dataset("train", draw=True)
        sampler = ResumableSampler(dataset, seed=h.seed, shuffle=True, drop_last=True,
                                     lengths=[len(c) for c in dataset.codes], batch_size=h.batch_size)
        return ResumableDataLoader(dataset, batch_size=h.batch_size, sampler=sampler, drop_last=True,
                                   num_workers=h.num_workers, generator=torch.Generator().manual_seed(h.seed),
                                   collate_fn=collate_codes)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._dataset("val", draw=False), batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_codes)


def _codebook_size(path: str) -> int:
    import json

    config = Path(path) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"motion VQ-VAE not found: {path} (expected config.json + model.safetensors)")
    return int(json.loads(config.read_text()).get("codebook_size", 512))


def _write_codes(path: Path, codes: list[Tensor]) -> None:
    """Save code sequences as one flat array + lengths, atomically; failures only cost a re-encode."""
    write_npz_cache(path, codes=torch.cat(codes).numpy().astype(np.int32),
                    lengths=np.array([len(c) for c in codes], dtype=np.int64))
