"""The one input check every speech metric makes: a finite, non-empty mono waveform."""

from __future__ import annotations

import numpy as np


def mono_waveform(wave: np.ndarray, caller: str) -> np.ndarray:
    """``wave`` as float32 ``(T,)``; a wrong shape, no samples, or NaN / Inf raise naming ``caller``."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or len(wave) == 0:
        raise ValueError(f"{caller} expects a non-empty mono waveform (T,), got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"{caller}: the waveform holds NaN or infinite samples")
    return wave
