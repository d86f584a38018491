"""Data modules that train on latents of a frozen audio VAE, encoded once and cached (shared by t2a and tts).

:class:`FrozenVAEData` finds the VAE that encodes the clips (``data.vae_dir``,
else the model's, see :func:`~unidit.training.frozen_tokenizer.frozen_tokenizer`);
:func:`latents_path` names a cache file by the VAE's weights and the
clips, :func:`cached_latents` reads latents ``(C, T_i)`` saved as one ``(C, ΣT)``
array plus lengths, or encodes and saves them.  The cache key (the file's
bytes hashed for the clips) stay the task's own: each hashes its clips differently.  The loaders
serve a dataset whose ``latents`` are ``(C, T_i)`` with the task's collate.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from unidit.training.frozen_tokenizer import frozen_tokenizer
from unidit.training.frozen_vae import load_frozen_vae, saved_latent_channels
from unidit.training.latent_codec import weights_digest
from unidit.training.resumable_sampler import resumable_loader


class FrozenVAEData:
    """Mixin for a LightningDataModule with ``hparams.vae_dir`` and ``self._vae`` (None until found).

    ``hparams`` also needs ``batch_size``, ``seed``, ``num_workers`` and ``bucket_by_length`` for the loaders.

    A subclass sets ``vae_class`` (the VAE type saved in ``vae_dir``) and
    ``vae_missing`` (the error when there is neither ``vae_dir`` nor a model VAE).
    """

    vae_class: type
    vae_missing: str

    def vae(self):
        """The frozen VAE: ``data.vae_dir`` if given, else the model's (``model.vae``)."""
        if self._vae is None:
            self._vae = frozen_tokenizer(
                self, self.hparams.vae_dir,
                lambda folder: load_frozen_vae(self.vae_class, folder, saved_latent_channels(folder)), "vae",
                self.vae_missing)
        return self._vae

    def attach_vae(self, vae) -> None:
        """Use this (already loaded) VAE, e.g. the one of a loaded task, when ``data.vae_dir`` is None."""
        if self.hparams.vae_dir is None:
            self._vae = vae

    def latent_train_loader(self, dataset: Dataset, collate_fn: Callable) -> DataLoader:
        """Resumable shuffled batches, of similar lengths when ``hparams.bucket_by_length``."""
        h = self.hparams
        lengths = [z.shape[-1] for z in dataset.latents] if h.bucket_by_length else None
        return resumable_loader(dataset, h.batch_size, h.seed, h.num_workers, lengths=lengths, collate_fn=collate_fn)

    def latent_val_loader(self, dataset: Dataset, collate_fn: Callable) -> DataLoader:
        """Batches in order."""
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_fn)


def latents_path(folder: Path, vae, clip_keys: Iterable[bytes]) -> Path:
    """``folder/latents-<key>.npz``, the key hashing ``vae``'s weights then each clip's bytes in ``clip_keys``."""
    digest = hashlib.sha256(weights_digest(vae).encode())
    for key in clip_keys:
        digest.update(key)
    return folder / f"latents-{digest.hexdigest()[:16]}.npz"


def cached_latents(path: Path, count: int, encode: Callable[[], list[Tensor]],
                   write: Callable[[Path, list[Tensor]], None] | None = None) -> list[Tensor]:
    """The ``count`` latents ``(C, T_i)`` saved at ``path``, or ``encode()``'s, then saved there by ``write``.

    A missing, damaged or mismatched file is re-encoded; ``write`` defaults to :func:`write_latents`.
    """
    try:
        with np.load(path) as arrays:
            frames, lengths = arrays["latents"], arrays["lengths"]
        if len(lengths) == count and lengths.sum() == frames.shape[1]:
            return list(torch.from_numpy(frames).split(lengths.tolist(), dim=1))
    except (OSError, ValueError, KeyError):
        pass  # missing or damaged: encode below
    latents = encode()
    (write or write_latents)(path, latents)
    return latents


def write_latents(path: Path, latents: list[Tensor]) -> None:
    """Save latents (C, T_i) as one (C, ΣT) array + lengths, atomically; failures only cost a re-encode."""
    write_npz_cache(path, latents=torch.cat(latents, dim=1).numpy(),
                    lengths=np.array([z.shape[1] for z in latents], dtype=np.int64))


def write_npz_cache(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache file of named arrays atomically (temporary file + ``os.replace``).

    A cache is an optimisation: a failed write (full disk, read-only folder) only
    costs re-encoding next time, so an ``OSError`` is swallowed and nothing partial
    is left behind.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)
