"""Intelligibility: word error rate of an offline recogniser on synthesised speech.

The recogniser is CMU PocketSphinx (Huggins-Daines et al. 2006) with the
continuous en-us acoustic model and CMUdict that ship in the ``pocketsphinx``
wheel, so nothing is downloaded and nobody here trained it. Two language
models are offered:

* ``"default"``: the wheel's general English trigram model (``en-us.lm.bin``);
  it reads espeak-ng's formant speech poorly (WER 0.73 on the real
  embedded test clips against 0.09 with the corpus model, docs/tasks/tts.md).
* ``"corpus"`` (what the TTS report uses): a trigram back-off model built with
  the wheel's own ``pocketsphinx.lm.ArpaBoLM`` (fixed discount 0.5) from the
  *training* transcripts, restricted to words the dictionary knows. Test
  sentences are unseen word combinations, so the model constrains the search
  to the task's vocabulary and phrasing, as a domain language model does,
  without knowing the answer.

Audio goes to the decoder as 16 kHz mono int16 (the acoustic model's rate),
resampled from the input rate with torchaudio's windowed sinc
(:func:`unidit.tokenizers.audio_io.resample`). The decoder dithers its input
(PocketSphinx's ``-dither``, re-seeded for every clip): espeak-ng writes
exact digital silence, whose log spectra otherwise hit the floor and cost
recognition (WER 0.47 -> 0.40 over six voices in our check). Text normalisation before
scoring, applied to references and hypotheses alike (:func:`normalize_text`):
lower case, every character other than a-z, 0-9 and the apostrophe becomes a
space, whitespace collapsed. The embedded corpus never writes digits, so no
number expansion is needed; real transcripts with digits would count them as
errors. WER is the corpus-level rate of ``jiwer`` (Morris et al. 2004): total
substitutions + deletions + insertions over total reference words.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import jiwer
import numpy as np
from unidit.tasks.tts.metrics.threads import torch_threads
from unidit.tasks.tts.metrics.waveform import mono_waveform
from unidit.tokenizers.audio_io import resample

RECOGNISER_RATE = 16000  # Hz, the en-us acoustic model's sample rate
_NOT_WORD = re.compile(r"[^a-z0-9']+")


def normalize_text(text: str) -> str:
    """Lower case; characters other than a-z, 0-9 and ' become spaces; whitespace collapsed."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus-level WER of ``hypotheses`` against ``references`` after :func:`normalize_text`."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize_text(text) for text in references]
    if not refs or not any(refs):
        raise ValueError("word_error_rate needs at least one non-empty reference")
    empty = [i for i, ref in enumerate(refs) if not ref]
    if empty:
        raise ValueError(f"references {empty[:5]} are empty after normalisation")
    return float(jiwer.wer(refs, [normalize_text(text) for text in hypotheses]))


class Recognizer:
    """PocketSphinx en-us with the default or a corpus language model; :meth:`transcribe` one clip.

    PocketSphinx carries its cepstral-mean estimate and its dither generator from
    one utterance to the next, so a clip's transcript would depend on the clips
    decoded before it. Every clip starts from the initial estimate and a
    re-seeded front end instead (``set_cmn`` + ``reinit_feat``), so a clip gets
    the same transcript whatever was decoded before.
    """

    def __init__(self, corpus_texts: Iterable[str] | None = None, threads: int | None = 1) -> None:
        """``corpus_texts`` (training transcripts) selects the corpus language model; None the default one.

        ``threads``: torch threads for the resampler (see :mod:`unidit.tasks.tts.metrics.threads`).
        """
        from pocketsphinx import Decoder

        self.threads = threads
        self.vocabulary: list[str] | None = None  # the corpus language model's words
        self._decoder = Decoder(loglevel="FATAL", dither=True)
        self.language_model = "default"
        if corpus_texts is not None:
            self._use_corpus_model(list(corpus_texts))
        self._initial_cmn = self._decoder.get_cmn()

    def _use_corpus_model(self, texts: list[str]) -> None:
        from pocketsphinx.lm import ArpaBoLM

        known: dict[str, bool] = {}

        def in_dictionary(word: str) -> bool:
            if word not in known:
                known[word] = self._decoder.lookup_word(word) is not None
            return known[word]

        sentences = [" ".join(w for w in normalize_text(text).split() if in_dictionary(w)) for text in texts]
        sentences = [s for s in sentences if s]
        if not sentences:
            raise ValueError("no corpus text with a word in the recogniser's dictionary to build a language model")
        model = ArpaBoLM(add_start=True, discount_mass=0.5)
        model.read_corpus(io.StringIO("\n".join(sentences)))
        model.compute()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "corpus.arpa"
            with open(path, "w") as handle:
                model.write(handle)
            self._decoder.add_lm_file("corpus", str(path))
        self._decoder.activate_search("corpus")
        self.language_model = "corpus"
        self.vocabulary = sorted({w for s in sentences for w in s.split()})

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> str:
        """The recognised words of a mono float waveform in [-1, 1] (``""`` when nothing is recognised)."""
        wave = mono_waveform(wave, "transcribe")
        with torch_threads(self.threads):
            audio = resample(wave, sample_rate, RECOGNISER_RATE)
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        self._decoder.set_cmn(self._initial_cmn)  # forget the previous clip (see the class docstring)
        self._decoder.reinit_feat()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm.tobytes(), full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def word_error_rate(self, waves: Sequence[np.ndarray], sample_rate: int, references: Sequence[str]) -> float:
        """Corpus-level WER of the recogniser on ``waves`` against ``references``."""
        return word_error_rate(references, [self.transcribe(wave, sample_rate) for wave in waves])
