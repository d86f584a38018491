"""Guo et al.'s text-to-motion metrics in the evaluator's embedding space (CVPR 2022, §5 "evaluation metrics").

All distances are Euclidean between evaluator embeddings (:mod:`unidit.tasks.motion.evaluator_network`):

- **R-precision** (top 1 / 2 / 3): the motions are shuffled and cut into pools of 32; within a pool
  each caption ranks the 32 motions by distance, and it scores at ``k`` when its own motion is
  among the ``k`` nearest (chance ``k / 32``). Incomplete pools are dropped.
- **MM-distance**: mean distance between each caption and its own motion.
- **diversity**: mean distance between the motions of random pairs (300 in Guo et al.).
- **multimodality**: for each of several captions, several motions are generated; the mean distance
  between random pairs of one caption's motions (Guo et al.: 100 captions, 30 motions, 10 pairs).
- **FID**: :func:`unidit.training.frechet.frechet_distance` of two sets of motion embeddings.
"""

from __future__ import annotations

import numpy as np


def r_precision(text: np.ndarray, motion: np.ndarray, pool: int = 32, top: int = 3, seed: int = 0) -> np.ndarray:
    """``(top,)``: fraction of captions ``(N, E)`` whose motion ``(N, E)`` is within the ``k`` nearest of its pool."""
    if text.shape != motion.shape:
        raise ValueError(f"r_precision: expected paired embeddings of one shape, got {text.shape} and {motion.shape}")
    if len(text) < pool:
        raise ValueError(f"r_precision: {len(text)} pairs are fewer than one pool of {pool}")
    order = np.random.default_rng(seed).permutation(len(text))
    hits = np.zeros(top)
    pools = len(text) // pool
    for k in range(pools):
        index = order[k * pool : (k + 1) * pool]
        distances = np.linalg.norm(text[index, None] - motion[None, index], axis=-1)  # (P, P)
        rank = (distances < distances.diagonal()[:, None]).sum(axis=1)  # (P,) motions nearer than its own
        hits += (rank[:, None] < np.arange(1, top + 1)[None]).sum(axis=0)
    return hits / (pools * pool)


def matching_distance(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-distance: mean distance between paired rows of ``text`` and ``motion`` ``(N, E)``."""
    return float(np.linalg.norm(text - motion, axis=-1).mean())


def diversity(motion: np.ndarray, pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between ``pairs`` random pairs of rows of ``motion`` ``(N, E)``."""
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, len(motion), pairs), rng.integers(0, len(motion), pairs)
    return float(np.linalg.norm(motion[first] - motion[second], axis=-1).mean())


def multimodality(motion: np.ndarray, pairs: int = 10, seed: int = 0) -> float:
    """Mean distance between ``pairs`` random pairs of motions of one caption; ``motion`` is ``(C, S, E)``
    (``S`` motions for each of ``C`` captions; pairs drawn without replacement within a caption)."""
    captions, samples, _ = motion.shape
    if samples < 2:
        raise ValueError(f"multimodality needs at least 2 motions per caption, got {samples}")
    rng = np.random.default_rng(seed)
    distances = []
    for row in motion:  # (S, E)
        count = min(pairs, samples)
        first, second = rng.choice(samples, count, replace=False), rng.choice(samples, count, replace=False)
        distances.append(np.linalg.norm(row[first] - row[second], axis=-1).mean())
    return float(np.mean(distances))
