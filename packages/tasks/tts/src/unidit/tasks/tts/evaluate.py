"""The tts metric table: intelligibility, voice, spectral distance, duration and speed.

Test utterances are the corpus' test split: texts spoken by every voice, so
each generated utterance has a reference of the same text in the same voice.
Each metric is computed on three (four) sets of the same utterances, so a
figure always stands beside its ceiling:

- ``real``: the recorded test utterances (resampled to the VAE's rate);
- ``vae``: the same passed through the audio VAE (encode, decode) — the best
  the latent model could reach;
- ``generated``: spoken from the text in the named voice, the duration from the
  model's duration predictor;
- ``prompted`` (``report.prompted``): spoken from the text with no voice name,
  the voice given only by a reference prompt (another utterance of the voice
  and its transcript), F5-TTS's zero-shot setting (Chen et al. 2024, §4).

Metrics (the functions of :mod:`unidit.tasks.tts.metrics`):

- WER of PocketSphinx with a language model of the training transcripts
  (F5-TTS and SimpleSpeech 2 report WER with Whisper / Paraformer; this is
  the offline stand-in, comparable between rows and runs here only);
- speaker similarity (Resemblyzer d-vectors, cosine) to an enrolment clip: a
  *different* training utterance of the same voice, so the real row is a
  ceiling below 1;
- MCD with DTW (Kubichek 1993) against the real utterance of the same text and
  voice (0 for the real row by definition);
- duration error: mean |seconds − reference seconds|; beside it each duration
  predictor's error on the test texts;
- real-time factor: wall seconds to make the audio / seconds of audio.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from unidit.tasks.tts.corpus import Utterance
from unidit.tasks.tts.duration import PREDICTORS
from unidit.tasks.tts.frontend import Line
from unidit.tasks.tts.media import write_utterances
from unidit.tasks.tts.metrics import (
    Recognizer,
    SpeakerEncoder,
    Stopwatch,
    duration_error,
    mel_cepstral_distortion,
    real_time_factor,
)
from unidit.tasks.tts.task import VoicePrompt
from unidit.training.latent_codec import decode_latents, encode_clips
from unidit.training.report import Evaluation, spread_indices
from unidit.training.sampling import ReportOptions, SamplingOptions, generate_in_batches


@dataclass
class TTSReport(ReportOptions):
    """What ``unidit fit/eval tts`` generates and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` (steps, sampler, guidance, sway, seed, batch size, ...) and

    Attributes:
        max_utterances: test utterances generated and measured (spread over texts and voices).
        prompted: also speak every test utterance in the voice of a reference prompt alone.
    """

    steps: int = 16
    sampler: str = "euler"
    cfg_scale: float = 2.0
    cfg_rescale: float = 0.0
    sway: float | None = -1.0
    batch_size: int = 16
    num_written: int = 6
    max_utterances: int = 60
    prompted: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_utterances < 1:
            raise ValueError(f"max_utterances: expected an integer >= 1, got {self.max_utterances}")


def reconstruct(vae, waveforms: list[np.ndarray]) -> list[np.ndarray]:
    """Clips ``(T_i,)`` encoded and decoded by the audio VAE, cut back to their lengths."""
    decoded = decode_latents(vae, encode_clips(vae, waveforms))
    return [clip[: len(wave)] for clip, wave in zip(decoded, waveforms)]


def timed(make):
    """``(make(), wall seconds)``."""
    with Stopwatch() as watch:
        value = make()
    return value, watch.seconds


def enrolment(test: list[Utterance], train: list[Utterance]) -> tuple[dict[str, Utterance], dict[str, Utterance]]:
    """Per voice of ``test``: a prompt and a different enrolment clip from the training split (first by id)."""
    by_voice: dict[str, list[Utterance]] = defaultdict(list)
    for u in sorted(train, key=lambda u: u.id):
        by_voice[u.speaker].append(u)
    missing = sorted({u.speaker for u in test} - {v for v, us in by_voice.items() if len(us) >= 2})
    if missing:
        raise ValueError(f"voices {missing} have fewer than two training utterances; speaker similarity needs "
                         "an enrolment clip and a prompt per voice")
    return {v: us[0] for v, us in by_voice.items()}, {v: us[1] for v, us in by_voice.items()}


def generate(task, lines: list[Line], options: SamplingOptions, batch_size: int, prompt: VoicePrompt | None = None,
             desc: str = "speaking test texts") -> list[np.ndarray]:
    batches = generate_in_batches(lambda part, opts: task.sample_speech(lines[part], options=opts, prompt=prompt),
                                  len(lines), options, batch_size, desc=desc)
    return [clip for batch in batches for clip in batch]


def evaluate_tts(task, data, report: TTSReport) -> Evaluation:
    """Generate the test utterances and measure every row (see the module docstring)."""
    splits = data.splits()
    test_all = splits["test"]
    if not test_all:
        raise ValueError("the corpus has no test utterances (see unidit.tasks.tts.corpus.split)")
    test = [test_all[i] for i in spread_indices(len(test_all), min(report.max_utterances, len(test_all)))]
    vae, rate = task.require_vae(), task.sample_rate
    prompts, enrol = enrolment(test, splits["train"])
    real = data.waveforms(test)
    lines = [Line(u.text, u.speaker) for u in test]
    options = report.sampling()
    rows: dict[str, list[np.ndarray]] = {"real": real}
    seconds_made: dict[str, float] = {}
    rows["vae"], seconds_made["vae"] = timed(lambda: reconstruct(vae, real))
    rows["generated"], seconds_made["generated"] = timed(lambda: generate(task, lines, options, report.batch_size))
    if report.prompted:
        rows["prompted"], seconds_made["prompted"] = timed(lambda: _prompted(task, data, test, prompts, options,
                                                                             report.batch_size))
    enrol_waves = dict(zip(enrol, data.waveforms(list(enrol.values()))))
    recognizer = Recognizer(corpus_texts=[u.text for u in splits["train"]])
    speakers = SpeakerEncoder()
    references = [u.text for u in test]
    table: dict[str, dict] = {}
    real_seconds = [len(r) / rate for r in real]
    for name, waves in rows.items():
        seconds = [len(w) / rate for w in waves]
        table[name] = {
            "wer": recognizer.word_error_rate(waves, rate, references),
            "speaker_similarity": _mean_similarity(speakers, waves, [enrol_waves[u.speaker] for u in test], rate),
            "mcd_dtw": None if name == "real" else float(np.mean(
                [mel_cepstral_distortion(r, w, rate) for w, r in zip(waves, real)])),
            "duration_error_s": duration_error(seconds, real_seconds),
            "rtf": real_time_factor(seconds_made[name], sum(seconds)) if name in seconds_made else None,
        }
    predicted = {p: task.predict_seconds(lines, predictor=p).numpy() for p in PREDICTORS}
    true_seconds = np.array([u.seconds for u in test])
    metrics = {
        "rows": table,
        "duration_predictor_error_s": {p: duration_error(v, true_seconds) for p, v in predicted.items()},
        "duration_predictor": task.duration_predictor,
        "num_utterances": len(test),
        "voices": sorted({u.speaker for u in test}),
        "sample_rate": rate,
        "report": asdict(report),
    }
    written = rows["generated"]
    titles = [f"{u.speaker}: {u.text}" for u in test]
    return Evaluation(metrics, format_table(metrics),
                      lambda out: _write(out, written, titles, rate, report.num_written),
                      summary="wav samples and mel spectrogram PNGs")


def _prompted(task, data, test: list[Utterance], prompts: dict[str, Utterance], options: SamplingOptions,
              batch_size: int) -> list[np.ndarray]:
    """Every test utterance spoken with no voice name, in the voice of its voice's prompt (one batch per voice)."""
    out: list[np.ndarray | None] = [None] * len(test)
    for voice in sorted({u.speaker for u in test}):
        index = [i for i, u in enumerate(test) if u.speaker == voice]
        prompt = VoicePrompt(data.waveforms([prompts[voice]])[0], prompts[voice].text)
        clips = generate(task, [Line(test[i].text, None) for i in index], options, batch_size, prompt,
                         desc=f"prompted by {voice}")
        for i, clip in zip(index, clips):
            out[i] = clip
    return out  # type: ignore[return-value]


def _mean_similarity(encoder: SpeakerEncoder, waves: list[np.ndarray], enrol: list[np.ndarray], rate: int) -> float:
    """Mean cosine similarity; a clip with no speech left after silence removal scores 0."""
    scores = []
    for wave, reference in zip(waves, enrol):
        try:
            scores.append(encoder.similarity(wave, reference, rate))
        except ValueError:
            scores.append(0.0)
    return float(np.mean(scores))


def _write(out, clips: list[np.ndarray], titles: list[str], rate: int, count: int):
    picks = spread_indices(len(clips), count)
    write_utterances(out, [clips[i] for i in picks], [titles[i] for i in picks], rate)
    return out


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(metrics: dict) -> str:
    """A plain-text metric table for the terminal."""
    header = "row".ljust(11) + "WER".rjust(8) + "speaker sim".rjust(13) + "MCD-DTW dB".rjust(12) + \
        "dur. err s".rjust(12) + "RTF".rjust(8)
    lines = [header]
    for name, row in metrics["rows"].items():
        lines.append(name.ljust(11) + _number(row["wer"]).rjust(8) + _number(row["speaker_similarity"]).rjust(13)
                     + _number(row["mcd_dtw"], 2).rjust(12) + _number(row["duration_error_s"]).rjust(12)
                     + _number(row["rtf"]).rjust(8))
    errors = metrics["duration_predictor_error_s"]
    lines += ["", "duration predictors, mean |predicted - true| s on the test texts: "
              + "   ".join(f"{name} {value:.3f}" + (" (used)" if name == metrics["duration_predictor"] else "")
                         for name, value in errors.items()),
              f"{metrics['num_utterances']} test utterances, voices: {', '.join(metrics['voices'])}"]
    return "\n".join(lines)
