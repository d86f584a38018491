"""Reading, writing and listing audio files for the audio tokenizers and tasks.

Audio is handled as float32 mono numpy arrays of shape (T,) with samples in [-1, 1].
Files are read with `soundfile` (wav, flac, ogg), multi-channel audio is averaged to
mono and resampled with `torchaudio.functional.resample` (windowed-sinc interpolation).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def resample(audio: np.ndarray, orig_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Resample a mono (T,) float array from `orig_sample_rate` to `sample_rate`."""
    if orig_sample_rate == sample_rate:
        return audio.astype(np.float32, copy=False)
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))  # (T,)
    resampled = torchaudio.functional.resample(waveform, orig_sample_rate, sample_rate)
    return resampled.numpy().astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Load an audio file as float32 mono (T,) in [-1, 1] at `sample_rate` Hz.

    Raises FileNotFoundError for a missing file and ValueError (naming the file) for
    audio soundfile cannot decode or that holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    try:
        data, file_sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(
            f"could not decode audio file {path}: expected a readable wav/flac/ogg file ({error})"
        ) from error
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"audio file {path} is empty: expected at least one sample")
    mono = data.mean(axis=1)  # (T,)
    if not np.all(np.isfinite(mono)):
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    mono = resample(mono, int(file_sample_rate), sample_rate)
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio (T,) as 16-bit PCM wav, atomically (temp file + os.replace)."""
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"write_wav({path}): expected mono audio of shape (T,), got {audio.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".wav")
    os.close(handle)
    try:
        soundfile.write(tmp_name, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def list_audio_files(folder: str | os.PathLike) -> list[Path]:
    """All wav/flac/ogg files under `folder` (recursive), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"audio folder {folder} holds no audio files: expected {', '.join(AUDIO_SUFFIXES)}")
    return files
