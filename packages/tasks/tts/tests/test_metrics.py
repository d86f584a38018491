"""TTS metrics with models nobody here trained: PocketSphinx WER, Resemblyzer similarity, MCD-DTW, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from unidit.tasks.tts.espeak import SAMPLE_RATE, synthesize, voice_named
from unidit.tasks.tts.metrics import (
    MCD_CONSTANT,
    Recognizer,
    SpeakerEncoder,
    duration_error,
    duration_errors,
    mel_cepstral_distortion,
    normalize_text,
    real_time_factor,
    word_error_rate,
)
from unidit.tasks.tts.metrics.mcd import mcd_cepstra
from unidit.tasks.tts.sentences import sentences

LM_TEXTS = sentences(400, seed=0)  # what the corpus language model is built from
SPOKEN = [text for text in sentences(40, seed=7) if text not in set(LM_TEXTS)][:4]  # unseen by the LM
CLEAR_VOICE = "us_klatt1"
WER_BOUND = 0.25  # PocketSphinx + corpus LM on clean espeak-ng speech: 0.11 on these 4 sentences, 0.15 on the test split


def _speech(text: str, voice: str) -> np.ndarray:
    return synthesize(text, voice_named(voice)).astype(np.float32) / 32768.0


def _with_noise(wave: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=len(wave)).astype(np.float32)
    scale = np.sqrt(np.mean(wave**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return np.clip(wave + scale * noise, -1.0, 1.0)


@pytest.fixture(scope="module")
def clear_speech() -> list[np.ndarray]:
    return [_speech(text, CLEAR_VOICE) for text in SPOKEN]


# ------------------------------------------------------------------ WER
def test_normalisation_and_word_error_rate():
    assert normalize_text("Did Anna's CAT--run?  Yes!") == "did anna's cat run yes"
    assert word_error_rate(["The old lamp."], ["the OLD lamp"]) == 0.0
    # one substitution and one deletion over 3 + 2 reference words
    assert word_error_rate(["the old lamp", "a coat"], ["the cold lamp", "coat"]) == pytest.approx(2 / 5)
    assert word_error_rate(["the old lamp", "a coat"], ["", "a coat"]) == pytest.approx(3 / 5)  # nothing heard
    with pytest.raises(ValueError, match="empty after normalisation"):
        word_error_rate(["fine", "?!"], ["fine", ""])


def test_recogniser_reads_clear_speech_and_fails_on_noise(clear_speech):
    recogniser = Recognizer(LM_TEXTS)
    assert recogniser.language_model == "corpus"
    hypotheses = [recogniser.transcribe(wave, SAMPLE_RATE) for wave in clear_speech]
    clean = word_error_rate(SPOKEN, hypotheses)
    assert clean <= WER_BOUND, list(zip(SPOKEN, hypotheses))
    noisy = recogniser.word_error_rate([_with_noise(w, snr_db=0.0, seed=i) for i, w in enumerate(clear_speech)],
                                       SAMPLE_RATE, SPOKEN)
    assert noisy >= clean + 0.3
    assert recogniser.transcribe(clear_speech[0], SAMPLE_RATE) == hypotheses[0]  # whatever was decoded before
    assert recogniser.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE).split() == []


# ------------------------------------------------------------------ speaker similarity
def test_speaker_similarity_prefers_the_same_voice():
    encoder = SpeakerEncoder()
    first, second = SPOKEN[0], SPOKEN[1]
    male_a, male_b, female_a = _speech(first, "us_klatt1"), _speech(second, "us_klatt1"), _speech(first, "us_f5")
    same_voice = encoder.similarity(male_a, male_b, SAMPLE_RATE)
    other_voice = encoder.similarity(male_a, female_a, SAMPLE_RATE)
    assert same_voice > other_voice + 0.1
    assert encoder.similarity(male_a, male_a, SAMPLE_RATE) == pytest.approx(1.0, abs=1e-5)
    embedding = encoder.embed(male_a, SAMPLE_RATE)
    assert embedding.shape == (256,) and np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------ MCD
def test_mcd_is_zero_for_identical_audio_and_grows_with_distortion(clear_speech):
    wave = clear_speech[0]
    assert mel_cepstral_distortion(wave, wave, SAMPLE_RATE) == 0.0
    distortions = [mel_cepstral_distortion(wave, _with_noise(wave, snr, seed=0), SAMPLE_RATE)
                   for snr in (30.0, 15.0, 0.0)]
    assert 0.0 < distortions[0] < distortions[1] < distortions[2]
    other_voice = mel_cepstral_distortion(wave, _speech(SPOKEN[0], "us_klatt6"), SAMPLE_RATE)
    assert other_voice > distortions[0]


def test_mcd_formula_on_aligned_cepstra():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1, 25))
    shifted = reference + rng.normal(size=(1, 25))
    expected = 10.0 / math.log(10.0) * math.sqrt(2.0 * np.sum((reference[0, 1:] - shifted[0, 1:]) ** 2))
    assert mcd_cepstra(reference, shifted) == pytest.approx(expected)
    assert MCD_CONSTANT == pytest.approx(10.0 * math.sqrt(2.0) / math.log(10.0))
    only_energy = reference.copy()
    only_energy[:, 0] += 5.0
    assert mcd_cepstra(reference, only_energy) == 0.0  # c0 is excluded
    # DTW: a sequence against itself with every frame repeated costs nothing
    sequence = rng.normal(size=(6, 25))
    assert mcd_cepstra(sequence, np.repeat(sequence, 2, axis=0)) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ timing
def test_duration_error_and_real_time_factor():
    predicted, reference = [1.0, 2.5, 3.0], [1.5, 2.5, 2.0]
    assert duration_errors(predicted, reference) == pytest.approx([0.5, 0.0, 1.0])
    assert duration_error(predicted, reference) == pytest.approx(0.5)
    assert real_time_factor(2.0, 8.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="equal-length"):
        duration_errors([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive audio duration"):
        real_time_factor(1.0, 0.0)
