"""TTS metrics computed with models nobody here trained: WER (PocketSphinx), speaker similarity
(Resemblyzer), MCD-DTW, duration error and real-time factor. Each is a function of waveforms."""

from unidit.tasks.tts.metrics.mcd import (
    MCD_CONSTANT,
    MelCepstrumConfig,
    mcd_cepstra,
    mel_cepstral_distortion,
    mel_cepstrum,
)
from unidit.tasks.tts.metrics.speaker import SpeakerEncoder, cosine
from unidit.tasks.tts.metrics.timing import Stopwatch, duration_error, duration_errors, real_time_factor, seconds
from unidit.tasks.tts.metrics.wer import Recognizer, normalize_text, word_error_rate

__all__ = [
    "MCD_CONSTANT", "MelCepstrumConfig", "Recognizer", "SpeakerEncoder", "Stopwatch", "cosine", "duration_error",
    "duration_errors", "mcd_cepstra", "mel_cepstral_distortion", "mel_cepstrum", "normalize_text",
    "real_time_factor", "seconds", "word_error_rate",
]
