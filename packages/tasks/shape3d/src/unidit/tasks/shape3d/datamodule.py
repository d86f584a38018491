"""Lightning data module for the 3D shape task: embedded primitives or real layouts."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
from torch.utils.data import DataLoader
from unidit.tasks.shape3d.data import (
    ShapeCloudDataset,
    ShapeSet,
    generate_embedded,
    load_mesh_folder,
    load_pc15k,
)
from unidit.training.resumable_sampler import resumable_loader


class Shape3DData(pl.LightningDataModule):
    """Point clouds with captions.

    Args:
        source: ``embedded`` (procedural primitives, generated from ``seed`` and cached),
            ``pc15k`` (ShapeNet PC15k ``<root>/<synset>/{train,val,test}/*.npy``) or
            ``meshes`` (a folder of meshes with a ``file,caption`` CSV; it is split by ``seed``).
        root: dataset folder for ``pc15k`` and ``meshes``.
        synsets: PC15k synset ids to read (None = every folder under ``root``).
        captions_csv: CSV for ``meshes`` (relative to ``root`` or absolute).
        seed: generation / split seed.
        num_train: embedded training clouds.
        num_val: embedded validation clouds.
        num_test: embedded test clouds (balanced over shape kinds).
        num_points: points per cloud.
        batch_size: clouds per batch.
        num_workers: DataLoader workers.
        cache_dir: where embedded data is cached (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        skip_bad_samples: ``meshes`` only: skip unreadable / invalid files and bad rows
            (counted and printed) instead of stopping at the first one.

    The training loader's order is a pure function of ``(seed, epoch)`` and its
    position is checkpointed, so a resumed run sees exactly the batches an
    uninterrupted one would; under DDP each rank reads a disjoint shard.
    """

    def __init__(
        self,
        source: Literal["embedded", "pc15k", "meshes"] = "embedded",
        root: str | None = None,
        synsets: list[str] | None = None,
        captions_csv: str | None = None,
        seed: int = 0,
        num_train: int = 2400,
        num_val: int = 200,
        num_test: int = 400,
        num_points: int = 2048,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_dir: str | None = None,
        skip_bad_samples: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, ShapeSet] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        h = self.hparams
        if h.source == "embedded":
            self.splits = generate_embedded(
                seed=h.seed,
                num_train=h.num_train,
                num_val=h.num_val,
                num_test=h.num_test,
                num_points=h.num_points,
                cache_dir=h.cache_dir,
            )
        elif h.source == "pc15k":
            if h.root is None:
                raise ValueError("data.root is required for source 'pc15k' (the folder holding <synset>/train|val|test)")
            self.splits = {
                split: load_pc15k(h.root, h.synsets, split, num_points=h.num_points, seed=h.seed)
                for split in ("train", "val", "test")
            }
        elif h.source == "meshes":
            if h.root is None or h.captions_csv is None:
                raise ValueError("data.root and data.captions_csv are required for source 'meshes'")
            everything = load_mesh_folder(h.root, h.captions_csv, num_points=h.num_points, seed=h.seed,
                                          skip_bad_samples=h.skip_bad_samples)
            self.splits = everything.split(seed=h.seed)
        else:
            raise ValueError(f"data.source must be one of embedded, pc15k, meshes; got {h.source!r}")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = ShapeCloudDataset(self.splits[split])
        if shuffle:
            return resumable_loader(dataset, self.hparams.batch_size, self.hparams.seed, self.hparams.num_workers)
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
