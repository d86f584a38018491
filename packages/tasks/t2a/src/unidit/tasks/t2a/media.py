"""Writing generated sound: wav files and log-mel spectrogram pictures.

Text-to-audio papers show samples as mel spectrograms (AudioLDM, Liu et al.
2023, Fig. 4; EzAudio, Hai et al. 2024, Fig. 3).  Each clip is written as a
16-bit wav and a PNG of its log-mel spectrogram with the caption as title;
``overview.png`` stacks several of them.  matplotlib (Agg) is imported lazily
so importing the task does not pull it in; PNGs are written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torchaudio
from unidit.tokenizers.audio_io import write_wav
from unidit.training.figures import wrap_words
from unidit.training.report import caption_slug
from unidit.training.spectrogram_figure import render_panels_png

MEL_BINS = 64
MEL_HOP_SECONDS = 0.01
DYNAMIC_RANGE_DB = 80.0  # colour range below the loudest cell
QUIET_DB = 30.0  # the colour scale never tops out below this level (about a -20 dBFS tone)


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectrogram (dB) of a mono clip: ``(MEL_BINS, frames)``."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=1024, hop_length=int(sample_rate * MEL_HOP_SECONDS), n_mels=MEL_BINS,
        f_min=30.0, f_max=sample_rate / 2,
    )
    power = transform(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))  # (M, F)
    return (10.0 * torch.log10(power + 1e-10)).numpy()


def render_spectrograms_png(clips: list[np.ndarray], titles: list[str], path: str | os.PathLike, sample_rate: int,
                            cols: int = 1, dpi: int = 100) -> Path:
    """Log-mel spectrograms of ``clips`` in one PNG grid (time in seconds, mel bins up), written atomically."""

    def draw(axis, clip: np.ndarray, title: str) -> None:
        mel = log_mel(clip, sample_rate)  # (M, F)
        seconds = len(clip) / sample_rate
        top = max(float(mel.max()), QUIET_DB)  # a near-silent clip stays dark instead of being stretched
        axis.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0.0, seconds, 0, MEL_BINS),
                    vmin=top - DYNAMIC_RANGE_DB, vmax=top)
        axis.set_title(wrap_words(title, 60), fontsize=8)

    cols = max(1, min(cols, len(clips)))
    rows = math.ceil(len(clips) / cols)
    return render_panels_png(clips, titles, path, draw, rows=rows, cols=cols, figsize=(5.0 * cols, 2.2 * rows),
                             dpi=dpi, ylabel="mel bin")


def write_clips(directory: str | os.PathLike, clips: list[np.ndarray], captions: list[str], sample_rate: int,
                overview_count: int = 8) -> list[Path]:
    """``NN_<caption>.wav`` and ``NN_<caption>.png`` per clip, plus ``overview.png`` of the first clips."""
    if len(clips) != len(captions):
        raise ValueError(f"got {len(clips)} clips but {len(captions)} captions")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (clip, text) in enumerate(zip(clips, captions)):
        stem = directory / f"{index:02d}_{caption_slug(text) or 'clip'}"
        written.append(write_wav(stem.with_suffix(".wav"), np.asarray(clip, dtype=np.float32), sample_rate))
        render_spectrograms_png([clip], [text], stem.with_suffix(".png"), sample_rate)
    if clips:
        count = min(overview_count, len(clips))
        render_spectrograms_png(clips[:count], captions[:count], directory / "overview.png", sample_rate,
                                cols=2 if count > 1 else 1)
    return written
