"""A corpus at the audio VAE's rate: every wav resampled once and cached.

The corpora are at 22,050 Hz (LJSpeech, espeak-ng) or 24 kHz (LibriTTS); the
audio VAE, PocketSphinx and Resemblyzer all work at 16 kHz.  Resampling at
every read costs more than the read (torchaudio's sinc resampler rebuilds its
441/320 kernel per call: ~0.4 s a clip on a busy 2-core machine), so each
utterance is resampled once with a polyphase FIR (``scipy.signal.resample_poly``,
Kaiser window) and kept as 16-bit PCM in the cache; the VAE, the latent
encoder and the metrics then read files already at their rate.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm.auto import tqdm
from unidit.tasks.tts.corpus import Utterance
from unidit.training.export import write_folder_atomically
from unidit.training.model_cache import cache_root


def resample_clip(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float ``(T,)`` from ``rate`` to ``target`` Hz (polyphase FIR), float32 in [-1, 1]."""
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(rate, target)
    return np.clip(resample_poly(audio, target // g, rate // g), -1.0, 1.0).astype(np.float32)


def at_rate(utterances: list[Utterance], rate: int, cache_dir: str | None = None) -> list[Utterance]:
    """The utterances with their wavs at ``rate`` Hz: a cached copy (written once), keyed by the sources."""
    if not utterances:
        return []
    digest = hashlib.sha256(str(rate).encode())
    for u in utterances:
        digest.update(f"{u.wav.resolve()}|{u.wav.stat().st_size}\n".encode())
    folder = cache_root(cache_dir) / "tts" / f"resampled-{rate}-{digest.hexdigest()[:16]}"
    names = [f"{index:06d}_{u.wav.stem}.wav" for index, u in enumerate(utterances)]
    if not all((folder / name).is_file() for name in names):
        write_folder_atomically(folder, lambda staging: _write(utterances, names, staging, rate))
    return [replace(u, wav=folder / name) for u, name in zip(utterances, names)]


def _write(utterances: list[Utterance], names: list[str], staging: Path, rate: int) -> None:
    def one(item: tuple[Utterance, str]) -> None:
        u, name = item
        audio, source_rate = soundfile.read(str(u.wav), dtype="float32", always_2d=True)  # (T, channels)
        soundfile.write(str(staging / name), resample_clip(audio.mean(axis=1), source_rate, rate), rate,
                        subtype="PCM_16")

    with ThreadPoolExecutor(max_workers=2) as pool:  # soundfile and scipy release the GIL
        list(tqdm(pool.map(one, zip(utterances, names)), total=len(names), leave=False,
                  desc=f"resampling the corpus to {rate} Hz"))
