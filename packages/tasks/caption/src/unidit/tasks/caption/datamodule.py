"""Lightning data module of the captioner: pictures with captions, from the embedded scenes or COCO files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from unidit.tasks.caption.data import CaptionSet, read_coco_captions, read_karpathy
from unidit.tasks.caption.image_encoder import images_to_tensor
from unidit.tasks.caption.scenes import scene_split
from unidit.training.model_cache import cache_root
from unidit.training.resumable_sampler import resumable_loader


class ImageCaptionDataset(Dataset):
    """``{"image": (3, S, S) float in [-1, 1], "caption": str, "image_id": int}`` items of a caption set.

    ``every_caption``: one item per (image, caption) pair (training); otherwise one per
    image with its first caption (validation loss). Pictures are decoded once and kept.
    """

    def __init__(self, captions: CaptionSet, image_size: int, every_caption: bool = True) -> None:
        self.set = captions
        self.pairs = [(i, k) for i, texts in enumerate(captions.captions)
                      for k in (range(len(texts)) if every_caption else range(1))]
        self.pictures = images_to_tensor(captions.images(image_size))  # (N, 3, S, S)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image, caption = self.pairs[index]
        return {"image": self.pictures[image], "caption": self.set.captions[image][caption],
                "image_id": int(self.set.image_ids[image])}


class CaptionData(pl.LightningDataModule):
    """Pictures with captions for ``unidit fit caption``.

    Args:
        source: ``embedded`` (rendered shape scenes, generated from ``seed`` and cached),
            ``coco`` (``<root>/annotations/captions_{train,val}2017.json`` with ``<root>/{train,val}2017/``;
            the val set is also the test set) or ``karpathy`` (``karpathy_file`` with images under ``root``).
        root: dataset folder for ``coco`` and ``karpathy``.
        karpathy_file: the Karpathy ``dataset_coco.json`` for ``karpathy``.
        seed: scene / shuffling seed.
        num_train, num_val, num_test: embedded scenes per split.
        image_size: side the pictures are resized to.
        batch_size: (picture, caption) pairs per batch.
        num_workers: DataLoader workers.
        cache_dir: cache of the embedded scenes and the caption latents (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
    """

    def __init__(
        self,
        source: Literal["embedded", "coco", "karpathy"] = "embedded",
        root: str | None = None,
        karpathy_file: str | None = None,
        seed: int = 0,
        num_train: int = 2000,
        num_val: int = 200,
        num_test: int = 200,
        image_size: int = 64,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, CaptionSet] = {}

    @property
    def latent_cache(self) -> Path:
        """Where the text-latent tokenizer's lower-layer latents of the captions are cached."""
        return cache_root(self.hparams.cache_dir) / "text_latent"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        h = self.hparams
        if h.source == "embedded":
            sizes = {"train": h.num_train, "val": h.num_val, "test": h.num_test}
            self.splits = {s: scene_split(s, seed=h.seed, sizes=sizes, cache_dir=h.cache_dir) for s in sizes}
        elif h.source == "coco":
            if h.root is None:
                raise ValueError("data.root is required for source 'coco' (the folder holding annotations/ and "
                                 "train2017/, val2017/)")
            root = Path(h.root)
            train = read_coco_captions(root / "annotations" / "captions_train2017.json", root / "train2017")
            val = read_coco_captions(root / "annotations" / "captions_val2017.json", root / "val2017")
            self.splits = {"train": train, "val": val, "test": val}
        elif h.source == "karpathy":
            if h.root is None or h.karpathy_file is None:
                raise ValueError("data.root and data.karpathy_file are required for source 'karpathy'")
            self.splits = {s: read_karpathy(h.karpathy_file, s, h.root) for s in ("train", "val", "test")}
        else:
            raise ValueError(f"data.source must be one of embedded, coco, karpathy; got {h.source!r}")

    def split_captions(self, split: str) -> list[str]:
        """Every caption of a split (what the task encodes to latents before training)."""
        self.setup()
        return self.splits[split].all_captions() if split == "train" else [c[0] for c in self.splits[split].captions]

    def pictures(self, split: str) -> torch.Tensor:
        """``(N, 3, S, S)`` float pictures of a split, in image order."""
        self.setup()
        return images_to_tensor(np.asarray(self.splits[split].images(self.hparams.image_size)))

    def train_dataloader(self) -> DataLoader:
        self.setup()
        dataset = ImageCaptionDataset(self.splits["train"], self.hparams.image_size, every_caption=True)
        return resumable_loader(dataset, self.hparams.batch_size, self.hparams.seed, self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        dataset = ImageCaptionDataset(self.splits["val"], self.hparams.image_size, every_caption=False)
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers)
