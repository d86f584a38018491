"""Prompt-faithfulness classifier: a small PointNet (Qi et al. 2017).

A text-to-shape model is faithful to "a small cone, upside down" if a
classifier trained on real clouds calls its sample a cone.  The classifier is
PointNet's core: a shared per-point MLP ``3 -> 64 -> 128 -> 256`` (1x1
convolutions with batch norm), a symmetric max-pool over points, and an MLP
head.  It sees random 512-point subsets of each cloud (a cheap augmentation;
PointNet §4 also drops points), optionally turned about the vertical axis.

It is an :class:`~unidit.training.evaluator.EvaluatorNetwork`: trained deterministically,
saved as ``model.safetensors`` beside a ``config.json``, cached by a hash of its data.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from unidit.training.evaluator import EvaluatorNetwork, evaluator_folder, load_or_train_evaluator, train_evaluator


class PointNetClassifier(EvaluatorNetwork):
    """PointNet classification network over ``(B, N, 3)`` clouds."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (64, 128, 256), num_points: int = 512,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.num_points = num_points
        layers, width_in = [], 3
        for width in widths:
            layers += [nn.Conv1d(width_in, width, 1), nn.BatchNorm1d(width), nn.ReLU()]
            width_in = width
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(width_in, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, num_classes)
        )

    def embed(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> the max-pooled point features ``(B, 256)``."""
        return self.point_mlp(rearrange(points, "b n c -> b c n")).amax(dim=2)  # (B, 256)

    def forward(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> logits ``(B, num_classes)``."""
        return self.head(self.embed(points))  # (B, K)


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
    num_points: int = 512, rotate: bool = False, seed: int = 0, progress: bool = False,
) -> PointNetClassifier:
    """Train a :class:`PointNetClassifier` with Adam and a cosine schedule (deterministic for a seed).

    Args:
        points: ``(M, N, 3)`` clouds; labels: ``(M,)`` class indices.
        rotate: augment with random rotations about y.
    Returns:
        The trained model in eval mode.
    """
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32)  # (M, N, 3)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)  # (M,)
    steps_per_epoch = max(1, len(points) // batch_size)

    def epoch(generator: torch.Generator):
        order = torch.randperm(len(points), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            batch = random_subsets(points[index], num_points, generator)  # (b, n, 3)
            yield (random_yaw(batch, generator) if rotate else batch), labels[index]

    return train_evaluator(
        lambda: PointNetClassifier(num_classes, num_points=num_points), epoch,
        lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr, seed=seed, progress=progress, desc="PointNet",
    )


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
    folder = evaluator_folder("shape3d", "classifier", points, labels, cache_dir=cache_dir, v=2, seed=seed,
                              k=num_classes, **train_kwargs)
    return load_or_train_evaluator(PointNetClassifier, folder,
                                   lambda: train_point_classifier(points, labels, num_classes, seed=seed, **train_kwargs))
