"""Prompt-faithfulness classifier for t2v: a small (2+1)D CNN with three heads.

A generated clip is faithful to "a red triangle moves from left to right" if
a classifier trained on real clips calls its primary object a triangle, red,
and moving left to right.  The network reads every fourth frame (5 of 17),
runs two per-frame convolutions at full and half resolution (shapes need
sharp edges), then two stages that factorise a 3D convolution into a strided
spatial one and a temporal one ("(2+1)D", Tran et al. 2018, §3.5), the
temporal one residual.  Features are max-pooled over space (the object
wherever it is); their maximum over time describes *what* is there, and a
linear layer over the per-frame maxima describes *how it changes* (growing vs
shrinking, up vs down).  The two together are the 128-d embedding a Fréchet
distance is measured in (as FVD uses an I3D network's features, Unterthiner
et al. 2019); three linear heads predict shape, colour and motion.  It trains
on the embedded training split in a minute or two on a CPU.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from unidit.tasks.t2v.scenes import COLOUR_NAMES, MOTIONS, SHAPES
from unidit.training.evaluator import EvaluatorNetwork, evaluator_folder, load_or_train_evaluator, train_evaluator

ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "motion")
CLASS_NAMES: dict[str, tuple[str, ...]] = {"shape": SHAPES, "colour": COLOUR_NAMES, "motion": MOTIONS}
CLASSIFIER_VERSION = 2  # bump when the network, its training or its saved format changes


def _conv(width_in: int, width_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> list[nn.Module]:
    padding = tuple(k // 2 for k in kernel)
    conv = nn.Conv3d(width_in, width_out, kernel, stride=stride, padding=padding)
    return [conv, nn.BatchNorm3d(width_out), nn.ReLU()]


class TemporalResidual(nn.Module):
    """``x + ReLU(BN(conv_t(x)))`` with a ``(3, 1, 1)`` convolution over time.

    The identity path carries each frame's spatial features through untouched:
    mixing neighbouring frames of a moving object without it blurred the shape
    features and slowed learning shapes several-fold in our trials.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(*_conv(width, width, (3, 1, 1), (1, 1, 1)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(x)  # (B, C, T, h, w)


def _separable_stage(width_in: int, width_out: int) -> list[nn.Module]:
    """A strided spatial ``(1, 3, 3)`` convolution, then a residual temporal one (R(2+1)D)."""
    return _conv(width_in, width_out, (1, 3, 3), (1, 2, 2)) + [TemporalResidual(width_out)]


class VideoAttributeClassifier(EvaluatorNetwork):
    """Shape / colour / motion of the primary object of a ``(B, F, H, W, 3)`` uint8 clip.

    Args:
        num_frames: frames of the clips it reads (17); it keeps every ``frame_stride``-th.
        size: frame side in pixels (64).
        widths: channels of the two per-frame convolutions and the two (2+1)D stages.
        embedding_dim: width of the embedding the heads read.
    """

    def __init__(self, num_frames: int = 17, size: int = 64, frame_stride: int = 4,
                 widths: tuple[int, ...] = (16, 32, 64, 96), embedding_dim: int = 128) -> None:
        super().__init__()
        self.num_frames, self.size, self.frame_stride = num_frames, size, frame_stride
        w = tuple(widths)
        # an unstrided first layer: telling a circle from a square needs full-resolution edges
        # (a strided stem learnt shapes several times slower in our trials)
        self.features = nn.Sequential(
            *_conv(3, w[0], (1, 3, 3), (1, 1, 1)), *_conv(w[0], w[1], (1, 3, 3), (1, 2, 2)),
            *_separable_stage(w[1], w[2]), *_separable_stage(w[2], w[3]),
        )
        kept = len(range(0, num_frames, frame_stride))
        self.dynamics = nn.Sequential(nn.Linear(w[3] * kept, embedding_dim - w[3]), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(embedding_dim, len(CLASS_NAMES[name])) for name in ATTRIBUTES})

    def prepare(self, clips: Tensor | np.ndarray) -> Tensor:
        """uint8 ``(B, F, H, W, 3)`` -> float ``(B, 3, F', H, W)`` in [-1, 1], every ``frame_stride``-th frame."""
        clips = torch.as_tensor(np.asarray(clips) if not isinstance(clips, Tensor) else clips)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != (self.num_frames, self.size, self.size, 3):
            raise ValueError(
                f"classifier expects uint8 clips (B, {self.num_frames}, {self.size}, {self.size}, 3), "
                f"got {tuple(clips.shape)}"
            )
        clips = clips[:, :: self.frame_stride].to(next(self.parameters()).device)
        return rearrange(clips.float() / 127.5 - 1.0, "b f h w c -> b c f h w")  # (B, 3, F', H, W)

    def embed(self, video: Tensor) -> Tensor:
        """``(B, 3, F', H, W)`` from :meth:`prepare` -> ``(B, embedding_dim)``."""
        features = self.features(video)  # (B, C, T, h, w)
        # max over space finds the object wherever it is (a mean would mostly measure its area)
        per_frame = features.amax(dim=(3, 4))  # (B, C, T)
        appearance = per_frame.amax(dim=2)  # (B, C): what is there, at any time
        dynamics = self.dynamics(rearrange(per_frame, "b c t -> b (c t)"))  # (B, E - C): how it changes
        return torch.cat([appearance, dynamics], dim=1)  # (B, E)

    def forward(self, video: Tensor) -> dict[str, Tensor]:
        """Logits per attribute, ``{"shape": (B, 4), "colour": (B, 5), "motion": (B, 8)}``."""
        embedding = self.embed(video)
        return {name: head(embedding) for name, head in self.heads.items()}


def train_video_classifier(clips: np.ndarray, labels: np.ndarray, *, epochs: int = 4, batch_size: int = 32,
                           lr: float = 3e-3, seed: int = 0, progress: bool = False) -> VideoAttributeClassifier:
    """Train on uint8 clips ``(M, F, H, W, 3)`` with ``labels (M, 3)`` (shape, colour, motion), Adam + one-cycle.

    The loss is the sum of the three cross-entropies.  Returns the model in eval mode.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)  # (M, 3)
    steps_per_epoch = max(1, len(clips) // batch_size)

    def epoch(generator: torch.Generator):
        order = torch.randperm(len(clips), generator=generator).numpy()
        for step in range(steps_per_epoch):
            yield np.sort(order[step * batch_size : (step + 1) * batch_size])

    def loss(model: VideoAttributeClassifier, index: np.ndarray) -> Tensor:
        logits = model(model.prepare(clips[index]))
        return sum(F.cross_entropy(logits[name], labels[index, k]) for k, name in enumerate(ATTRIBUTES))

    return train_evaluator(
        lambda: VideoAttributeClassifier(num_frames=clips.shape[1], size=clips.shape[2]), epoch, loss,
        epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr, seed=seed, schedule="one_cycle", progress=progress,
        desc="t2v classifier",
    )


@torch.no_grad()
def classify(model: VideoAttributeClassifier, clips: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Predicted ``(M, 3)`` classes (shape, colour, motion) and ``(M, E)`` embeddings of uint8 clips."""
    model.eval()
    predictions, embeddings = [], []
    for start in range(0, len(clips), batch_size):
        embedding = model.embed(model.prepare(clips[start : start + batch_size]))  # (b, E)
        predictions.append(torch.stack([model.heads[n](embedding).argmax(-1) for n in ATTRIBUTES], dim=1))  # (b, 3)
        embeddings.append(embedding)
    return torch.cat(predictions).cpu().numpy(), torch.cat(embeddings).float().cpu().numpy()


def attribute_accuracy(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fraction correct per attribute, ``{"shape": ..., "colour": ..., "motion": ...}``."""
    correct = np.asarray(predictions) == np.asarray(labels)  # (M, 3)
    return {name: float(correct[:, k].mean()) for k, name in enumerate(ATTRIBUTES)}


def load_or_train_classifier(clips: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                             cache_dir: str | os.PathLike | None = None, **train_kwargs) -> VideoAttributeClassifier:
    """A classifier for the given training clips, cached in ``<cache_dir>/t2v/classifier-<hash>``.

    The key hashes the clips, labels, seed and training arguments, so another
    data seed or split size trains (and caches) its own classifier;
    ``cache_dir`` defaults to ``$UNIDIT_CACHE`` or ``~/.cache/unidit``.
    """
    clips = np.ascontiguousarray(clips, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    folder = evaluator_folder("t2v", "classifier", clips, labels, cache_dir=cache_dir, v=CLASSIFIER_VERSION,
                              seed=seed, **train_kwargs)
    return load_or_train_evaluator(VideoAttributeClassifier, folder,
                                   lambda: train_video_classifier(clips, labels, seed=seed, progress=True, **train_kwargs))
