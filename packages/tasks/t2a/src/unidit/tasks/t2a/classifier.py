"""Event classifier on log-mel spectrograms: the judge of t2a faithfulness.

Audio generation papers score samples with a pretrained audio tagger (PANNs,
Kong et al. 2020, in AudioLDM's evaluation; VGGish for FAD, Kilgour et al.
2019).  The embedded data has its own closed vocabulary, so here a small
PANNs-style CNN is trained on the real training clips instead: a log-mel
spectrogram, three conv blocks (conv-BN-ReLU, 2x2 average pooling), the
remaining frequency bands of each frame projected to one vector, then mean +
max pooling over time (PANNs' global pooling) to an embedding, and one logit
per event kind.

Clips may hold two kinds (layered or in sequence), so the head is multi-label
(binary cross-entropy).  A clip counts as recognised when the ``k`` highest
scoring kinds are exactly its ``k`` kinds (``k`` = 1 or 2, known from the
caption): :func:`top_k_accuracy`.  The embedding (the pooled features) is what
the Fréchet distance is computed in.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from einops import rearrange
from torch import Tensor, nn
from unidit.training.evaluator import EvaluatorNetwork, evaluator_folder, load_or_train_evaluator, train_evaluator

CLASSIFIER_VERSION = 2  # bump when the network, its training or its saved format changes


class LogMel(nn.Module):
    """Waveforms ``(B, T)`` -> log-mel spectrograms ``(B, n_mels, frames)``, no parameters."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 48, hop_length: int = 320) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1024, hop_length=hop_length, n_mels=n_mels, f_min=30.0,
            f_max=sample_rate / 2, power=2.0,
        )
        # the window is a view into a larger buffer; its own storage lets safetensors save it
        self.mel.spectrogram.window = self.mel.spectrogram.window.clone()

    def forward(self, audio: Tensor) -> Tensor:
        return torch.log(self.mel(audio) + 1e-6)  # (B, M, F)


class EventClassifier(EvaluatorNetwork):
    """A small PANNs-style CNN: log-mel ``(B, M, F)`` -> embedding ``(B, 2·E)`` -> logits ``(B, K)``."""

    def __init__(self, num_kinds: int, sample_rate: int = 16000, n_mels: int = 48,
                 widths: tuple[int, ...] = (16, 32, 64), embed_dim: int = 128) -> None:
        super().__init__()
        self.num_kinds, self._sample_rate = num_kinds, sample_rate
        self.log_mel = LogMel(sample_rate, n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        blocks, width_in = [], 1
        for width in widths:
            blocks += [nn.Conv2d(width_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.AvgPool2d(2)]
            width_in = width
        self.blocks = nn.Sequential(*blocks)
        bands = n_mels // 2 ** len(widths)  # frequency rows left after the pooling
        self.frame_proj = nn.Sequential(nn.Linear(width_in * bands, embed_dim), nn.ReLU())
        self.head = nn.Linear(2 * embed_dim, num_kinds)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def embed(self, audio: Tensor) -> Tensor:
        """Waveforms ``(B, T)`` (zero-padded to one length is fine) -> embeddings ``(B, 2·E)``."""
        mel = self.log_mel(audio)[:, None]  # (B, 1, M, F)
        features = self.blocks(self.input_norm(mel))  # (B, W, M', F')
        frames = self.frame_proj(rearrange(features, "b w m f -> b f (w m)"))  # (B, F', E)
        return torch.cat([frames.mean(dim=1), frames.amax(dim=1)], dim=1)  # (B, 2E)

    def forward(self, audio: Tensor) -> Tensor:
        return self.head(self.embed(audio))  # (B, K)


def pad_batch(waveforms: list[np.ndarray]) -> Tensor:
    """Right-pad mono clips with silence to one length: ``(B, T_max)`` float32."""
    length = max(len(w) for w in waveforms)
    out = np.zeros((len(waveforms), length), dtype=np.float32)
    for row, wave in zip(out, waveforms):
        row[: len(wave)] = wave
    return torch.from_numpy(out)


def multi_hot(kinds_per_clip: list[tuple[str, ...]], kinds: tuple[str, ...]) -> Tensor:
    """``(B, K)`` float targets: 1 for every kind present in a clip."""
    targets = torch.zeros(len(kinds_per_clip), len(kinds))
    for row, present in enumerate(kinds_per_clip):
        targets[row, [kinds.index(kind) for kind in present]] = 1.0
    return targets


def train_event_classifier(
    waveforms: list[np.ndarray], kinds_per_clip: list[tuple[str, ...]], kinds: tuple[str, ...],
    sample_rate: int = 16000, epochs: int = 6, batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
    progress: bool = True,
) -> EventClassifier:
    """Train an :class:`EventClassifier` with Adam + cosine decay and BCE on multi-hot targets.

    Clips are sorted into batches of similar length (little padding); batch order is
    shuffled and each clip's loudness jittered by up to ±6 dB. Returns the model in eval mode.
    """
    targets = multi_hot(kinds_per_clip, kinds)  # (M, K)
    by_length = np.argsort([len(w) for w in waveforms], kind="stable")
    batches = [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]

    def epoch(generator: torch.Generator):
        for batch in torch.randperm(len(batches), generator=generator).tolist():
            index = batches[batch]
            audio = pad_batch([waveforms[i] for i in index])  # (b, T)
            gain = torch.exp(torch.empty(len(index), 1).uniform_(-0.7, 0.7, generator=generator))  # loudness jitter
            yield audio * gain, targets[index]

    return train_evaluator(
        lambda: EventClassifier(len(kinds), sample_rate), epoch,
        lambda model, batch: F.binary_cross_entropy_with_logits(model(batch[0]), batch[1]),
        epochs=epochs, steps_per_epoch=len(batches), lr=lr, seed=seed, progress=progress, desc="event classifier",
    )


@torch.no_grad()
def classify(
    model: EventClassifier, waveforms: list[np.ndarray], batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Kind scores ``(M, K)`` (sigmoid) and embeddings ``(M, 2E)`` of clips, batched by similar length."""
    model.eval()
    order = np.argsort([len(w) for w in waveforms], kind="stable")
    scores = np.zeros((len(waveforms), model.num_kinds), dtype=np.float32)
    embeddings = np.zeros((len(waveforms), model.head.in_features), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        embedding = model.embed(pad_batch([waveforms[i] for i in index]))  # (b, 2E)
        embeddings[index] = embedding.numpy()
        scores[index] = torch.sigmoid(model.head(embedding)).numpy()
    return scores, embeddings


def top_k_correct(scores: np.ndarray, kinds_per_clip: list[tuple[str, ...]], kinds: tuple[str, ...]) -> np.ndarray:
    """Per clip: are its ``k`` highest-scoring kinds exactly its ``k`` true kinds? ``(M,)`` bool."""
    ranked = np.argsort(-scores, axis=1, kind="stable")  # (M, K)
    return np.array([
        set(ranked[row, : len(set(present))].tolist()) == {kinds.index(k) for k in present}
        for row, present in enumerate(kinds_per_clip)
    ], dtype=bool)


def top_k_accuracy(scores: np.ndarray, kinds_per_clip: list[tuple[str, ...]], kinds: tuple[str, ...]) -> float:
    """Fraction of clips recognised (see :func:`top_k_correct`)."""
    return float(top_k_correct(scores, kinds_per_clip, kinds).mean())


def load_or_train_classifier(
    waveforms: list[np.ndarray], kinds_per_clip: list[tuple[str, ...]], kinds: tuple[str, ...], *,
    sample_rate: int = 16000, data_seed: int = 0, cache_dir: str | os.PathLike | None = None, **train_kwargs,
) -> EventClassifier:
    """A classifier for a training set, cached as ``<cache_dir>/t2a/classifier-<hash>/`` (safetensors).

    The key covers the data seed, the clip count and total length, the kinds and
    the training arguments (hashing every waveform's bytes would cost more than
    it tells apart: the embedded set is a function of its seed and size).
    """
    folder = evaluator_folder(
        "t2a", "classifier", cache_dir=cache_dir, v=CLASSIFIER_VERSION, data_seed=data_seed, sample_rate=sample_rate,
        clips=len(waveforms), samples=int(sum(len(w) for w in waveforms)), kinds=list(kinds),
        **{k: v for k, v in train_kwargs.items() if k != "progress"},
    )
    return load_or_train_evaluator(
        EventClassifier, folder,
        lambda: train_event_classifier(waveforms, kinds_per_clip, kinds, sample_rate, **train_kwargs))
