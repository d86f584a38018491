"""Speaker similarity: cosine of d-vectors from Resemblyzer's pretrained voice encoder.

The encoder is Resemble AI's GE2E speaker encoder (Wan et al. 2018, "Generalized
End-to-End Loss for Speaker Verification"; the network of Jia et al. 2018's
SV2TTS), whose weights ship in the ``resemblyzer`` wheel; nobody here trained
it. F5-TTS and SimpleSpeech 2 report the same quantity (SIM) with WavLM-based
verifiers; this is the offline stand-in, so values compare between runs here,
not with those papers.

Recipe: resample to 16 kHz with torchaudio's windowed sinc
(:func:`unidit.tokenizers.audio_io.resample`; ``preprocess_wav`` would use
librosa's resampler, so we resample ourselves and hand it 16 kHz audio), then
``resemblyzer.preprocess_wav`` (volume normalised to -30 dBFS, long silences
removed with WebRTC VAD), then ``VoiceEncoder.embed_utterance`` (the mean of
L2-normalised partial embeddings of 1.6 s windows, normalised again).
Similarity is the cosine of two such embeddings, in [-1, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from unidit.tasks.tts.metrics.threads import torch_threads
from unidit.tasks.tts.metrics.waveform import mono_waveform
from unidit.tokenizers.audio_io import resample

ENCODER_RATE = 16000  # Hz, what resemblyzer's encoder expects


class SpeakerEncoder:
    """Resemblyzer's ``VoiceEncoder`` on the CPU (loaded once; about 1.4 M parameters)."""

    def __init__(self, device: str = "cpu", threads: int | None = 1) -> None:
        """``threads``: torch threads while embedding (see :mod:`unidit.tasks.tts.metrics.threads`)."""
        with warnings.catch_warnings():  # resemblyzer's webrtcvad imports the deprecated pkg_resources
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from resemblyzer import VoiceEncoder, preprocess_wav

        self._preprocess = preprocess_wav
        self.threads = threads
        with torch_threads(threads):
            self._encoder = VoiceEncoder(device=device, verbose=False)

    def embed(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """The unit-norm 256-d speaker embedding of a mono float waveform."""
        wave = mono_waveform(wave, "embed")
        with torch_threads(self.threads):
            audio = self._preprocess(resample(wave, sample_rate, ENCODER_RATE), source_sr=ENCODER_RATE)
            if len(audio) == 0:
                raise ValueError("no speech left after resemblyzer's silence removal: the waveform is silent")
            return np.asarray(self._encoder.embed_utterance(audio), dtype=np.float64)

    def similarity(self, wave_a: np.ndarray, wave_b: np.ndarray, sample_rate: int) -> float:
        """Cosine similarity of the two waveforms' speaker embeddings."""
        return cosine(self.embed(wave_a, sample_rate), self.embed(wave_b, sample_rate))

    def similarities(self, waves_a: Sequence[np.ndarray], waves_b: Sequence[np.ndarray],
                     sample_rate: int) -> np.ndarray:
        """Cosine similarity of each pair ``(waves_a[i], waves_b[i])``, shape (N,)."""
        if len(waves_a) != len(waves_b):
            raise ValueError(f"{len(waves_a)} waveforms against {len(waves_b)}")
        return np.array([self.similarity(a, b, sample_rate) for a, b in zip(waves_a, waves_b)])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors (0 if either is zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0
