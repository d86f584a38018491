"""Lightning data module for t2v: clips encoded once by the frozen video VAE, then trained on as latents.

Latent diffusion trains on the latents of a fixed autoencoder (Rombach et al.
2022; LTX-Video, HaCohen et al. 2024), so every clip is encoded once (posterior
mean, batched, no gradients) and the latents are cached on disk under a key
made of the VAE's weights and the clips themselves: another VAE, data seed or
dataset never reuses a stale cache.  The uint8 clips stay in memory for the
evaluation (real test clips give the classifier's ceiling).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from einops import rearrange
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from unidit.tasks.t2v.data import SPLITS, VideoSet, default_cache_dir, embedded_split
from unidit.tasks.t2v.real_data import load_msrvtt, load_webvid
from unidit.tasks.t2v.task import load_vae
from unidit.tokenizers.video_io import check_frame_count
from unidit.tokenizers.video_vae import VideoVAE
from unidit.training.resumable_sampler import resumable_loader


class LatentClipDataset(Dataset):
    """Items ``{"latents": (C, F', H', W') float32 tensor, "caption": str}``."""

    def __init__(self, latents: np.ndarray, captions: list[str]) -> None:
        if len(latents) != len(captions):
            raise ValueError(f"{len(latents)} latents but {len(captions)} captions")
        self.latents = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32))
        self.captions = captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        return {"latents": self.latents[index], "caption": self.captions[index]}


class T2VData(pl.LightningDataModule):
    """Captioned clips as VAE latents.

    Args:
        source: ``embedded`` (procedural clips from ``seed``, cached), ``webvid`` (a clip folder
            ``root`` with a WebVid-style CSV ``captions_file``) or ``msrvtt`` (``root`` with an
            MSR-VTT JSON ``captions_file``; its own train/validate/test split when it has all three).
            Real sets without a split are cut by ``seed`` (5% val, 10% test).
        root: clip folder for ``webvid`` and ``msrvtt``.
        captions_file: the CSV / JSON (relative to ``root`` or absolute).
        encoder_vae: a saved VideoVAE folder to encode with; None = the model's VAE (``model.vae``).
        seed: generation / split seed.
        num_train: embedded training clips (None = the default split size).
        num_val: embedded validation clips (None = default).
        num_test: embedded test clips (None = default; balanced over attributes).
        num_frames: frames per real clip (1 + k * the VAE's temporal compression).
        size: frame side of real clips (resized by the shorter side, centre-cropped).
        fps: resample real clips to this frame rate (None = native).
        batch_size: clips per training batch.
        encode_batch_size: clips per VAE call while encoding.
        num_workers: DataLoader workers.
        cache_dir: cache root (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        skip_bad_samples: real sources only: skip unreadable clips / bad rows (counted, printed).
    """

    def __init__(
        self,
        source: Literal["embedded", "webvid", "msrvtt"] = "embedded",
        root: str | None = None,
        captions_file: str | None = None,
        encoder_vae: str | None = None,
        seed: int = 0,
        num_train: int | None = None,
        num_val: int | None = None,
        num_test: int | None = None,
        num_frames: int = 17,
        size: int = 64,
        fps: float | None = None,
        batch_size: int = 32,
        encode_batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        skip_bad_samples: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.clips: dict[str, VideoSet] = {}
        self.latents: dict[str, np.ndarray] = {}
        self._vae: VideoVAE | None = None

    def use_vae(self, vae: VideoVAE) -> None:
        """Encode with this VAE (e.g. an evaluated model's) instead of ``data.encoder_vae`` / the model's."""
        self._vae = vae

    # -- loading --------------------------------------------------------------------------
    def load_clips(self) -> dict[str, VideoSet]:
        """The uint8 clips of every split (no VAE needed)."""
        if self.clips:
            return self.clips
        h = self.hparams
        if h.source == "embedded":
            sizes = {"train": h.num_train, "val": h.num_val, "test": h.num_test}
            self.clips = {s: embedded_split(s, seed=h.seed, cache_dir=h.cache_dir, size=sizes[s]) for s in SPLITS}
        elif h.source in ("webvid", "msrvtt"):
            if h.root is None or h.captions_file is None:
                raise ValueError(f"data.root and data.captions_file are required for source {h.source!r}")
            options = dict(num_frames=h.num_frames, size=h.size, fps=h.fps, skip_bad_samples=h.skip_bad_samples)
            reader = load_webvid if h.source == "webvid" else load_msrvtt
            self.clips = reader(h.root, h.captions_file, **options).split(seed=h.seed)
        else:
            raise ValueError(f"data.source must be one of embedded, webvid, msrvtt; got {h.source!r}")
        return self.clips

    def resolve_vae(self) -> VideoVAE:
        """The VAE given to :meth:`use_vae`, else ``data.encoder_vae``, else the attached model's frozen VAE."""
        if self._vae is not None:
            return self._vae
        if self.hparams.encoder_vae is not None:
            return load_vae(self.hparams.encoder_vae)
        module = self.trainer.lightning_module if self.trainer is not None else None
        if module is None or not hasattr(module, "vae"):
            raise ValueError("T2VData needs a VAE: pass data.encoder_vae or attach it to a T2VTask with model.vae")
        return module.vae

    def setup(self, stage: str | None = None) -> None:
        if self.latents:
            return
        clips = self.load_clips()
        vae = self.resolve_vae()
        check_frame_count(clips["train"].videos.shape[1], vae.temporal_compression)
        weights = vae_fingerprint(vae)
        for split, videos in clips.items():
            self.latents[split] = encode_cached(vae, videos.videos, weights, self.hparams.encode_batch_size,
                                                self.hparams.cache_dir, split)

    # -- loaders ---------------------------------------------------------------------------
    def dataset(self, split: str) -> LatentClipDataset:
        return LatentClipDataset(self.latents[split], self.clips[split].captions)

    def train_dataloader(self) -> DataLoader:
        return resumable_loader(self.dataset("train"), self.hparams.batch_size, self.hparams.seed,
                                self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._ordered_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._ordered_loader("test")

    def _ordered_loader(self, split: str) -> DataLoader:
        return DataLoader(self.dataset(split), batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers)


def vae_fingerprint(vae: VideoVAE) -> str:
    """A hash of the VAE's weights and latent statistics (its whole state dict)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_clips(vae: VideoVAE, videos: np.ndarray, batch_size: int = 16, desc: str = "encoding clips") -> np.ndarray:
    """uint8 clips ``(M, F, H, W, 3)`` -> normalised latents ``(M, C, F', H', W')`` float32 (posterior means)."""
    device = next(vae.parameters()).device
    out = []
    for start in tqdm(range(0, len(videos), batch_size), desc=desc, disable=len(videos) < 4 * batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(videos[start : start + batch_size])).to(device)
        pixels = rearrange(chunk.float() / 127.5 - 1.0, "b f h w c -> b c f h w")  # (b, 3, F, H, W)
        out.append(vae.encode_latents(pixels).float().cpu())  # (b, C, F', H', W')
    return torch.cat(out).numpy()


def encode_cached(vae: VideoVAE, videos: np.ndarray, weights: str, batch_size: int,
                  cache_dir: str | os.PathLike | None, split: str) -> np.ndarray:
    """:func:`encode_clips` through ``<cache>/t2v/latents-<hash>.npy`` (hash of VAE weights + clip bytes)."""
    digest = hashlib.sha256(weights.encode())
    digest.update(str(videos.shape).encode())
    digest.update(np.ascontiguousarray(videos).tobytes())
    path = Path(cache_dir or default_cache_dir()) / "t2v" / f"latents-{digest.hexdigest()[:16]}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            pass  # damaged cache: encode again
    latents = encode_clips(vae, videos, batch_size, desc=f"encoding {split} clips")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, latents)
        os.replace(tmp, path)
    except OSError:
        pass  # caching is an optimisation
    return latents
