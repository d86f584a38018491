"""Training the motion / text evaluator contrastively on the training split, cached by a hash of the data.

The loss is Guo et al.'s (CVPR 2022, §4; the margin-based contrastive loss of Hadsell, Chopra &
LeCun 2006): a matched caption and motion are pulled together, ``d(m_i, t_i)^2``, and a
mismatched pair is pushed until it is at least ``margin`` apart, ``max(0, margin - d(m_i, t_j))^2``,
with Euclidean ``d`` on the unnormalised embeddings. Guo et al. draw one mismatched pair per clip
by shifting the batch; here every mismatched pair of the batch counts (the mean over them), and a
pair whose two captions are the same text is not a negative (the embedded captions repeat, and
HumanML3D has duplicates too). Each epoch every training clip appears once with one of its
captions drawn at random. Training goes through :func:`unidit.training.evaluator.train_evaluator`
(seeded, Adam with cosine decay) and the network is cached as safetensors under
``<cache>/motion/evaluator-<hash>/``, the hash covering every clip's features, its captions and
the settings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor
from unidit.backbones.text_encoder import CaptionEmbeddingCache, TextEncoder
from unidit.tasks.motion.data import MotionSplit
from unidit.tasks.motion.evaluator_network import MotionTextEvaluator
from unidit.training.evaluator import evaluator_folder, load_or_train_evaluator, train_evaluator

EVALUATOR_VERSION = 1  # bump when the networks, the loss or the saved format change


@dataclass(frozen=True)
class EvaluatorSettings:
    """How the evaluator is trained (all part of its cache key).

    Attributes:
        epochs: passes over the training clips.
        batch_size: clips per contrastive batch.
        lr: Adam's peak learning rate (cosine decay to 0).
        hidden: width of both towers.
        embed_dim: width of the shared embedding.
        margin: Guo et al.'s margin (10 in their code) for mismatched pairs.
        seed: initialisation, batch order and caption draws.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    hidden: int = 128
    embed_dim: int = 32
    margin: float = 10.0
    seed: int = 0


class CaptionStates:
    """Frozen MiniLM token states of captions, memoised: ``(states (B, S, 384), lengths (B,))``.

    Each caption is padded to a multiple of 8 tokens and encoded in fixed-size calls
    (:class:`CaptionEmbeddingCache` with ``pad_multiple``), so its states depend on it alone.
    """

    def __init__(self, encoder: TextEncoder | None = None) -> None:
        self.cache = CaptionEmbeddingCache(encoder or TextEncoder(), batch_size=32, pad_multiple=8)

    @property
    def width(self) -> int:
        return self.cache.encoder.hidden_size

    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        states, mask = self.cache(captions)  # (B, S, Dt), (B, S)
        return states.cpu(), mask.sum(dim=1).cpu()


def pad_motions(motions: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Feature clips ``(T_i, D)`` -> zero-padded ``(B, T_max, D)`` float32 and lengths ``(B,)``."""
    lengths = torch.tensor([len(m) for m in motions])
    batch = torch.zeros(len(motions), int(lengths.max()), motions[0].shape[-1])
    for row, motion in enumerate(motions):
        batch[row, : len(motion)] = torch.from_numpy(np.asarray(motion, dtype=np.float32))
    return batch, lengths


def margin_loss(motion: Tensor, text: Tensor, same_caption: Tensor, margin: float) -> Tensor:
    """Guo et al.'s contrastive loss of embeddings ``(B, E)`` paired by row; ``same_caption`` ``(B, B)``
    marks pairs whose captions are equal (not negatives; the diagonal is the positives)."""
    distances = torch.cdist(text, motion)  # (B, B): text i to motion j
    positive = distances.diagonal().pow(2).mean()
    negatives = ~same_caption  # (B, B)
    if not bool(negatives.any()):
        return positive
    return positive + (margin - distances[negatives]).clamp_min(0).pow(2).mean()


def train_motion_text_evaluator(split: MotionSplit, states: CaptionStates, settings: EvaluatorSettings,
                                progress: bool = False) -> MotionTextEvaluator:
    """A :class:`MotionTextEvaluator` trained on ``split``'s clips and captions (in eval mode)."""
    clips = [clip for clip in split.clips if len(clip.features) >= 4]
    if len(clips) < 2:
        raise ValueError(f"the motion evaluator needs at least 2 training clips of >= 4 frames, got {len(clips)}")
    batches_per_epoch = -(-len(clips) // settings.batch_size)

    def build() -> MotionTextEvaluator:
        model = MotionTextEvaluator(split.mean.shape[0], states.width, settings.hidden, settings.embed_dim)
        model.set_statistics(torch.from_numpy(split.mean), torch.from_numpy(split.std))
        return model

    def epoch(generator: torch.Generator):
        order = torch.randperm(len(clips), generator=generator).tolist()
        draws = torch.randint(0, 1 << 30, (len(clips),), generator=generator).tolist()
        for start in range(0, len(order), settings.batch_size):
            chosen = order[start : start + settings.batch_size]
            if len(chosen) < 2:
                continue
            captions = [clips[i].captions[draws[i] % len(clips[i].captions)].text for i in chosen]
            yield pad_motions([clips[i].features for i in chosen]), states(captions), captions

    def loss(model: MotionTextEvaluator, batch) -> Tensor:
        (features, lengths), (text_states, text_lengths), captions = batch
        same = torch.tensor([[a == b for b in captions] for a in captions])  # (B, B)
        return margin_loss(model.embed_motion(features, lengths), model.embed_text(text_states, text_lengths),
                           same, settings.margin)

    threads = torch.get_num_threads()
    # One thread: the GRUs' small per-step kernels gain little from a second one, and on a shared
    # CPU its spin-waiting made training 20x slower in our runs; the weights also stop depending
    # on the machine's thread count.
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():  # also when called from a report running under no_grad
            return train_evaluator(build, epoch, loss, epochs=settings.epochs, steps_per_epoch=batches_per_epoch,
                                   lr=settings.lr, seed=settings.seed, progress=progress, desc="motion evaluator")
    finally:
        torch.set_num_threads(threads)


def load_or_train_motion_evaluator(split: MotionSplit, states: CaptionStates, settings: EvaluatorSettings,
                                   cache_dir: str | os.PathLike | None = None,
                                   progress: bool = False) -> MotionTextEvaluator:
    """The evaluator of ``split`` cached under ``<cache>/motion/evaluator-<hash>/``, trained on a miss."""
    captions = "\n".join("\t".join(c.text for c in clip.captions) for clip in split.clips)
    folder = evaluator_folder(
        "motion", "evaluator", *[clip.features for clip in split.clips], split.mean, split.std,
        np.frombuffer(captions.encode(), dtype=np.uint8), cache_dir=cache_dir, v=EVALUATOR_VERSION,
        text_encoder=states.cache.encoder.name_or_path.rsplit("/", 1)[-1], **asdict(settings))
    return load_or_train_evaluator(MotionTextEvaluator, folder,
                                   lambda: train_motion_text_evaluator(split, states, settings, progress))


@torch.no_grad()
def embed_motions(model: MotionTextEvaluator, motions: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Motion embeddings ``(N, E)`` float64 of feature clips ``(T_i, D)``, in batches of similar length."""
    order = np.argsort([len(m) for m in motions], kind="stable")
    out = np.zeros((len(motions), model.embed_dim))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        out[index] = model.embed_motion(*pad_motions([motions[i] for i in index])).double().numpy()
    return out


@torch.no_grad()
def embed_captions(model: MotionTextEvaluator, states: CaptionStates, captions: list[str],
                   batch_size: int = 64) -> np.ndarray:
    """Text embeddings ``(N, E)`` float64 of captions."""
    out = [model.embed_text(*states(captions[start : start + batch_size])).double().numpy()
           for start in range(0, len(captions), batch_size)]
    return np.concatenate(out)
