"""Prompt-faithfulness classifier: a small PointNet (Qi et al. 2017).

A text-to-shape model is faithful to "a small cone, upside down" if a
classifier trained on real clouds calls its sample a cone.  The classifier is
PointNet's core: a shared per-point MLP ``3 -> 64 -> 128 -> 256`` (1x1
convolutions with batch norm), a symmetric max-pool over points, and an MLP
head.  It sees random 512-point subsets of each cloud (a cheap augmentation;
PointNet §4 also drops points), optionally turned about the vertical axis.

Weights are saved as ``model.safetensors`` beside a ``config.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm
from unidit.training.model_cache import cache_root, load_or_train


class PointNetClassifier(nn.Module):
    """PointNet classification network over ``(B, N, 3)`` clouds."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256), num_points: int = 512,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.config = {"num_classes": num_classes, "widths": list(widths), "num_points": num_points,
                       "dropout": dropout}
        self.num_points = num_points
        layers, width_in = [], 3
        for width in widths:
            layers += [nn.Conv1d(width_in, width, 1), nn.BatchNorm1d(width), nn.ReLU()]
            width_in = width
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(width_in, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, num_classes)
        )

    def forward(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> logits ``(B, num_classes)``."""
        features = self.point_mlp(rearrange(points, "b n c -> b c n"))  # (B, 256, N)
        return self.head(features.amax(dim=2))  # (B, K)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.config, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "PointNetClassifier":
        directory = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"classifier checkpoint incomplete: {directory / name} is missing")
        config = json.loads((directory / "config.json").read_text())
        config["widths"] = tuple(config["widths"])
        model = cls(**config)
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.eval()


def random_subsets(points: Tensor, num_points: int, generator: torch.Generator | None = None) -> Tensor:
    """A random ``num_points`` subset of each cloud: ``(B, N, 3) -> (B, n, 3)``."""
    if points.shape[1] <= num_points:
        return points
    order = torch.rand(points.shape[:2], generator=generator).argsort(dim=1)[:, :num_points]  # (B, n)
    return torch.gather(points, 1, order.unsqueeze(-1).expand(-1, -1, 3))


def random_yaw(points: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Turn each cloud by a uniform random angle about the y (up) axis."""
    angle = torch.rand(points.shape[0], generator=generator) * 2 * math.pi  # (B,)
    c, s, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
    rotation = torch.stack([c, zero, -s, zero, one, zero, s, zero, c], dim=1).view(-1, 3, 3)  # (B, 3, 3)
    return points @ rotation


def train_point_classifier(
    points, labels, num_classes: int, epochs: int = 5, batch_size: int = 32, lr: float = 2e-3,
    num_points: int = 512, rotate: bool = False, seed: int = 0, max_seconds: float | None = None,
    progress: bool = False,
) -> PointNetClassifier:
    """Train a :class:`PointNetClassifier` with Adam and a cosine schedule.

    Args:
        points: ``(M, N, 3)`` clouds; labels: ``(M,)`` class indices.
        rotate: augment with random rotations about y.
        max_seconds: stop early once this much wall time has passed.
    Returns:
        The trained model in eval mode.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32)  # (M, N, 3)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)  # (M,)
    model = PointNetClassifier(num_classes, num_points=num_points)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, len(points) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    start = time.monotonic()
    model.train()
    for _ in tqdm(range(epochs), desc="PointNet", disable=not progress):
        order = torch.randperm(len(points), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            batch = random_subsets(points[index], num_points, generator)  # (b, n, 3)
            if rotate:
                batch = random_yaw(batch, generator)
            loss = F.cross_entropy(model(batch), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
    return model.eval()


@torch.no_grad()
def predict(model: PointNetClassifier, points, batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """Predicted class per cloud, ``(M, N, 3) -> (M,)``, on deterministic ``model.num_points`` subsets."""
    model.eval()
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    out = [
        model(random_subsets(points[i : i + batch_size], model.num_points, generator)).argmax(dim=1)
        for i in range(0, len(points), batch_size)
    ]
    return torch.cat(out).numpy()


def accuracy(model: PointNetClassifier, points, labels, seed: int = 0) -> float:
    """Fraction of clouds whose predicted class equals the label."""
    return float((predict(model, points, seed=seed) == np.asarray(labels)).mean())


def load_or_train_classifier(train, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                             **train_kwargs) -> PointNetClassifier:
    """A classifier for a training set (``.points``, ``.labels``, ``.label_names``), cached on disk.

    The cache folder ``<cache_dir>/shape3d/classifier-<hash>`` is keyed by the
    training clouds, labels and arguments; ``cache_dir`` defaults to
    ``$UNIDIT_CACHE`` or ``~/.cache/unidit``.
    """
    points = np.ascontiguousarray(train.points, dtype=np.float32)
    labels = np.ascontiguousarray(train.labels, dtype=np.int64)
    names = list(getattr(train, "label_names", []) or [])
    num_classes = max(len(names), int(labels.max()) + 1)
    digest = hashlib.sha256(points.tobytes())
    digest.update(labels.tobytes())
    digest.update(json.dumps({"v": 1, "seed": seed, "k": num_classes, **train_kwargs}, sort_keys=True).encode())
    folder = cache_root(cache_dir) / "shape3d" / f"classifier-{digest.hexdigest()[:16]}"
    return load_or_train(folder, PointNetClassifier.from_pretrained,
                         lambda: train_point_classifier(points, labels, num_classes, seed=seed, **train_kwargs))
