"""Mel-cepstral distortion (MCD) between two waveforms, aligned by dynamic time warping.

MCD (Kubichek 1993, "Mel-cepstral distance measure for objective speech
quality assessment") is, per aligned frame pair,
``(10 / ln 10) * sqrt(2 * sum_{d=1..D} (c_d - c'_d)^2)`` dB, averaged over the
frames; c0 (the frame energy) is excluded. Synthesised and reference speech
differ in timing, so frames are paired along a DTW path (as in the
"MCD-DTW" of Battenberg et al. 2020 and most TTS papers).

Cepstra here come from a mel spectrogram rather than SPTK's all-pass warped
``mcep``, so values compare between runs of this code, not with papers that
use SPTK. The recipe (:class:`MelCepstrumConfig`):

1. resample to 22,050 Hz if needed; STFT with a 1024-point Hann window, hop 256
   (11.6 ms), centred;
2. magnitude spectrum through 80 Slaney-normalised mel filters (0 Hz to
   Nyquist, ``librosa.filters.mel``), natural log with a floor of 1e-3 (with a
   floor of 1e-5 the silences dominate: white noise at -60 dBFS added to an
   embedded clip gave 1.5 dB, with 1e-3 it gives 0.3 dB, and 0.01 rms noise
   2.9 dB);
3. cepstrum of each frame's log-mel vector by a DCT-II scaled as a real
   cepstrum, ``c_n = (1 / (2M)) * DCT-II(log S)_n`` (so that
   ``log S_m ~ c_0 + 2 * sum_n c_n cos(pi n (m + 1/2) / M)``), keeping
   c0..c24 (25 coefficients); c1..c24 enter the distance;
4. DTW (``librosa.sequence.dtw``, steps (1,1), (1,0), (0,1), Euclidean cost on
   c1..c24), then the mean of the per-pair distance over the path, times
   ``10 * sqrt(2) / ln 10``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from unidit.tasks.tts.metrics.threads import torch_threads
from unidit.tasks.tts.metrics.waveform import mono_waveform
from unidit.tokenizers.audio_io import resample

MCD_CONSTANT = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB per unit of cepstral Euclidean distance


@dataclass(frozen=True)
class MelCepstrumConfig:
    """Analysis settings of :func:`mel_cepstrum` (defaults: the recipe in the module docstring)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    n_coefficients: int = 25  # c0..c24; c0 is left out of the distance
    log_floor: float = 1e-3  # see step 2 of the recipe


def mel_cepstrum(wave: np.ndarray, sample_rate: int, config: MelCepstrumConfig = MelCepstrumConfig()) -> np.ndarray:
    """Mel cepstra c0..c_{D-1} of a mono waveform, shape (frames, n_coefficients)."""
    wave = mono_waveform(wave, "mel_cepstrum")
    with torch_threads(1):
        wave = resample(wave, sample_rate, config.sample_rate)
    import librosa

    spectrum = np.abs(librosa.stft(wave, n_fft=config.n_fft, hop_length=config.hop_length, window="hann",
                                   center=True))  # (n_fft/2+1, frames)
    log_mel = np.log(np.maximum(_mel_filters(config) @ spectrum, config.log_floor))  # (n_mels, frames)
    cepstra = scipy.fft.dct(log_mel, type=2, axis=0, norm=None) / (2 * config.n_mels)
    return cepstra[: config.n_coefficients].T.astype(np.float64)


@lru_cache(maxsize=4)
def _mel_filters(config: MelCepstrumConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=0.0,
                               fmax=config.sample_rate / 2)


def mcd_cepstra(reference: np.ndarray, synthesized: np.ndarray) -> float:
    """MCD-DTW in dB between two cepstrum sequences (frames, D) whose column 0 is c0 (dropped)."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(synthesized, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] < 2 or not len(a) or not len(b):
        raise ValueError(f"mcd_cepstra expects two (frames, D >= 2) arrays with equal D, got {a.shape} and {b.shape}")
    a, b = a[:, 1:], b[:, 1:]
    import librosa

    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=True)  # path: (L, 2)
    distances = np.linalg.norm(a[path[:, 0]] - b[path[:, 1]], axis=1)
    return float(MCD_CONSTANT * distances.mean())


def mel_cepstral_distortion(reference: np.ndarray, synthesized: np.ndarray, sample_rate: int,
                            config: MelCepstrumConfig = MelCepstrumConfig()) -> float:
    """MCD-DTW in dB between two mono waveforms at ``sample_rate`` (0 for identical audio)."""
    return mcd_cepstra(mel_cepstrum(reference, sample_rate, config), mel_cepstrum(synthesized, sample_rate, config))
