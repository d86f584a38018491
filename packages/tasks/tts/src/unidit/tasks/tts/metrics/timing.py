"""Duration error and real-time factor of a TTS system.

SimpleSpeech 2 predicts one duration per sentence and F5-TTS takes the total
duration as given, so the duration metric is the absolute error of the whole
clip's length against the reference recording of the same text and voice, in
seconds (leading and trailing silence count as part of the clip, as the
duration target of the corpus does). The real-time factor is compute seconds
per second of audio produced (< 1: faster than real time), as both papers
report it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


def seconds(wave: np.ndarray, sample_rate: int) -> float:
    """Duration of a waveform (T,) in seconds."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return len(wave) / sample_rate


def duration_errors(predicted_seconds: Sequence[float], reference_seconds: Sequence[float]) -> np.ndarray:
    """``|predicted - reference|`` per clip, in seconds, shape (N,)."""
    predicted = np.asarray(predicted_seconds, dtype=np.float64)
    reference = np.asarray(reference_seconds, dtype=np.float64)
    if predicted.shape != reference.shape or predicted.ndim != 1:
        raise ValueError(f"duration_errors expects two equal-length 1-d sequences, got {predicted.shape} and "
                         f"{reference.shape}")
    return np.abs(predicted - reference)


def duration_error(predicted_seconds: Sequence[float], reference_seconds: Sequence[float]) -> float:
    """Mean absolute duration error in seconds."""
    errors = duration_errors(predicted_seconds, reference_seconds)
    if not len(errors):
        raise ValueError("duration_error needs at least one clip")
    return float(errors.mean())


def real_time_factor(compute_seconds: float, audio_seconds: float) -> float:
    """Seconds of computation per second of audio produced."""
    if audio_seconds <= 0:
        raise ValueError(f"real_time_factor needs a positive audio duration, got {audio_seconds}")
    return float(compute_seconds) / float(audio_seconds)


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds`` (wall clock, ``time.perf_counter``)."""

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
