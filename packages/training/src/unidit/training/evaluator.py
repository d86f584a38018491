"""Evaluation networks: the classifiers and embedders a task trains to judge its samples.

A generated sample is faithful to its prompt when a network trained on real
data recognises what the prompt asked for (a PointNet calls the cloud a cone,
an audio tagger hears a bell), and a set of samples is realistic when its
embeddings sit where the real ones do (the Fréchet distance of
:mod:`unidit.training.frechet`: FID, FAD, FVD). Public evaluators (Inception,
VGGish, PANNs, I3D) know nothing of the embedded data sets, so each task
trains its own on the real training split. What every such network shares
lives here:

- :class:`EvaluatorNetwork`: a module saved as ``config.json`` +
  ``model.safetensors`` (``PyTorchModelHubMixin``: the config is the
  constructor's arguments), never pickled;
- :func:`train_evaluator`: deterministic training (seeded initialisation and
  batch order, Adam with a cosine or one-cycle schedule, no wall-clock stop),
  so the same data always gives the same weights and the same metrics;
- :func:`load_or_train_evaluator`: trained once and cached on disk, keyed by a
  hash of the training data and settings (``<cache>/<task>/<name>-<hash>/``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from tqdm.auto import tqdm
from unidit.training.model_cache import cache_root, load_or_train

Network = TypeVar("Network", bound=nn.Module)


class EvaluatorNetwork(nn.Module, PyTorchModelHubMixin):
    """Base of every evaluation network: ``save_pretrained`` / ``from_pretrained`` as safetensors + config.json.

    A subclass takes its configuration as plain constructor arguments (JSON
    types: numbers, strings, lists) and implements ``embed(x) -> (B, E)``, the
    features the Fréchet distance is computed in.
    """

    def embed(self, inputs: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs):
        """The network saved in the local folder ``directory`` (never looked up on a hub), in eval mode."""
        directory = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} is missing: expected a folder written by save_pretrained")
        return super().from_pretrained(directory, local_files_only=True, **kwargs).eval()


def train_evaluator(
    build: Callable[[], Network],
    epoch_batches: Callable[[torch.Generator], Iterable[Any]],
    loss_fn: Callable[[Network, Any], Tensor],
    *,
    epochs: int,
    steps_per_epoch: int,
    lr: float,
    seed: int = 0,
    schedule: Literal["cosine", "one_cycle"] = "cosine",
    progress: bool = False,
    desc: str = "evaluator",
) -> Network:
    """Train ``build()`` with Adam for ``epochs`` passes; returns it in eval mode.

    ``epoch_batches(generator)`` yields one epoch's batches, drawing their order
    and any augmentation from ``generator`` (seeded with ``seed``; the global
    torch RNG, which initialises the weights and drives dropout, is seeded with
    it too). ``loss_fn(model, batch)`` is the scalar loss of a batch. The
    learning rate follows a cosine decay over all steps, or a one-cycle schedule
    (Smith & Topin 2019; 15% warm-up), stepped once per batch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    total = max(1, epochs * steps_per_epoch)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    elif schedule == "one_cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.15)
    else:
        raise ValueError(f"schedule: expected 'cosine' or 'one_cycle', got {schedule!r}")
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress):
        for batch in epoch_batches(generator):
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def evaluator_folder(task: str, name: str, *arrays: np.ndarray, cache_dir: str | os.PathLike | None = None,
                     **settings) -> Path:
    """``<cache>/<task>/<name>-<hash>``: the hash covers every array's bytes, dtype and shape, and ``settings``."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return cache_root(cache_dir) / task / f"{name}-{digest.hexdigest()[:16]}"


def load_or_train_evaluator(network_cls: type[EvaluatorNetwork], folder: Path, train: Callable[[], Network]) -> Network:
    """The network cached in ``folder`` if it loads, else ``train()`` saved there atomically; in eval mode."""
    return load_or_train(folder, network_cls.from_pretrained, train).eval()
