"""Writing generated speech: wav files and mel-spectrogram pictures.

TTS papers show utterances as mel spectrograms (FastSpeech 2, Ren et al. 2021,
Fig. 3; F5-TTS, Chen et al. 2024, Fig. 4), 80 mel bands as vocoders use them.
Each utterance is written as a 16-bit wav and a PNG of its log-mel
spectrogram titled with the voice and the text; a reference prompt, when
there is one, is drawn before a dashed line so the continuation is visible.
matplotlib (Agg) is imported lazily; PNGs are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchaudio
from unidit.tokenizers.audio_io import write_wav
from unidit.training.figures import wrap_words
from unidit.training.report import sample_names
from unidit.training.spectrogram_figure import render_panels_png

MEL_BANDS = 80
HOP_SECONDS = 0.0125  # 12.5 ms, the hop of most TTS mel front ends
FLOOR_DB = -80.0  # colour floor below the loudest cell


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectrogram in dB of a mono clip: ``(MEL_BANDS, frames)``."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=1024, win_length=round(0.05 * sample_rate),
        hop_length=round(HOP_SECONDS * sample_rate), n_mels=MEL_BANDS, f_min=0.0, f_max=sample_rate / 2)
    power = transform(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))  # (M, F)
    return (10.0 * torch.log10(power.clamp(min=1e-10))).numpy()


def render_speech_png(clips: list[np.ndarray], titles: list[str], path: str | os.PathLike, sample_rate: int,
                      prompt_seconds: float = 0.0) -> Path:
    """Log-mel spectrograms of ``clips`` stacked in one PNG; a dashed line at ``prompt_seconds`` if > 0."""

    def draw(axis, clip: np.ndarray, title: str) -> None:
        mel = log_mel(clip, sample_rate)  # (M, F)
        top = float(mel.max()) if mel.size else 0.0
        axis.imshow(mel, origin="lower", aspect="auto", cmap="viridis", vmin=top + FLOOR_DB, vmax=top,
                    extent=(0.0, len(clip) / sample_rate, 0, MEL_BANDS))
        if prompt_seconds > 0:
            axis.axvline(prompt_seconds, color="white", linestyle="--", linewidth=1.0)
        axis.set_title(wrap_words(title, 80), fontsize=8)

    return render_panels_png(clips, titles, path, draw, rows=len(clips), cols=1, figsize=(7.0, 2.3 * len(clips)),
                             dpi=100, ylabel="mel band")


def write_utterances(directory: str | os.PathLike, clips: list[np.ndarray], titles: list[str], sample_rate: int,
                     overview_count: int = 6, prompt: np.ndarray | None = None) -> list[Path]:
    """``NN_<title>.wav`` + ``NN_<title>.png`` per clip, and ``overview.png`` of the first ``overview_count``.

    With ``prompt`` (the reference clip) each picture shows the prompt and then the clip.
    """
    if len(clips) != len(titles):
        raise ValueError(f"got {len(clips)} clips but {len(titles)} titles")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lead = np.zeros(0, dtype=np.float32) if prompt is None else np.asarray(prompt, dtype=np.float32)
    shown = [np.concatenate([lead, np.asarray(clip, dtype=np.float32)]) for clip in clips]
    written = []
    for name, clip, picture, title in zip(sample_names(titles), clips, shown, titles):
        written.append(write_wav(directory / f"{name}.wav", np.asarray(clip, dtype=np.float32), sample_rate))
        render_speech_png([picture], [title], directory / f"{name}.png", sample_rate, len(lead) / sample_rate)
    if clips:
        count = min(overview_count, len(clips))
        render_speech_png(shown[:count], titles[:count], directory / "overview.png", sample_rate,
                          len(lead) / sample_rate)
    return written
