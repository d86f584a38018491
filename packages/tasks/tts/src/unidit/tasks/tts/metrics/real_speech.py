"""The metrics measured on real (espeak-ng) test utterances: the ceilings a TTS model is judged against.

``uv run python -m unidit.tasks.tts.metrics.real_speech`` prints a markdown table
over the embedded corpus's test split (20 sentences, each spoken by all 6
voices): recogniser WER with the corpus and the default language model, per
voice and overall; speaker similarity of same-voice pairs (different
sentences) and different-voice pairs (same sentence); MCD-DTW of same-sentence
different-voice pairs and same-voice different-sentence pairs; the duration
gap between voices reading one sentence; and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import subprocess
import time
from collections import defaultdict

import numpy as np
import soundfile
from unidit.tasks.tts.corpus import Utterance, embedded_corpus, read_ljspeech, split
from unidit.tasks.tts.metrics.mcd import mel_cepstral_distortion
from unidit.tasks.tts.metrics.speaker import SpeakerEncoder
from unidit.tasks.tts.metrics.timing import duration_error
from unidit.tasks.tts.metrics.wer import Recognizer, word_error_rate


def cpu_model() -> str:
    """``lscpu``'s model name with its family and model numbers (the processor string without lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}
    name = fields.get("Model name", "unknown CPU")
    if "CPU family" in fields and "Model" in fields:
        name += f" (family {fields['CPU family']} model {fields['Model']})"
    return name


def measure(test: list[Utterance], train_texts: list[str], *, mcd_pairs: int = 60) -> dict[str, float | dict]:
    """Every real-speech metric over the test utterances (see the module docstring)."""
    waves = {u.id: soundfile.read(str(u.wav), dtype="float32")[0] for u in test}
    rate = soundfile.info(str(test[0].wav)).samplerate
    results: dict[str, float | dict] = {}
    for name, recogniser in (("corpus", Recognizer(train_texts)), ("default", Recognizer())):
        start = time.perf_counter()
        hyps = {u.id: recogniser.transcribe(waves[u.id], rate) for u in test}
        seconds = time.perf_counter() - start
        results[f"wer_{name}"] = word_error_rate([u.text for u in test], [hyps[u.id] for u in test])
        results[f"wer_{name}_by_voice"] = {
            speaker: word_error_rate([u.text for u in test if u.speaker == speaker],
                                     [hyps[u.id] for u in test if u.speaker == speaker])
            for speaker in sorted({u.speaker for u in test})}
        results[f"recogniser_{name}_rtf"] = seconds / sum(len(w) / rate for w in waves.values())
    encoder = SpeakerEncoder()
    embeddings = {u.id: encoder.embed(waves[u.id], rate) for u in test}
    same_voice, other_voice = [], []
    for a, b in itertools.combinations(test, 2):
        similarity = float(embeddings[a.id] @ embeddings[b.id])
        if a.speaker == b.speaker and a.text != b.text:
            same_voice.append(similarity)
        elif a.speaker != b.speaker and a.text == b.text:
            other_voice.append(similarity)
    results["sim_same_voice"], results["sim_other_voice_same_text"] = np.mean(same_voice), np.mean(other_voice)
    by_text: dict[str, list[Utterance]] = defaultdict(list)
    for u in test:
        by_text[u.text].append(u)
    rng = np.random.default_rng(0)
    text_pairs = [pair for group in by_text.values() for pair in itertools.combinations(group, 2)]
    voice_pairs = [(a, b) for a, b in itertools.combinations(test, 2) if a.speaker == b.speaker and a.text != b.text]
    for key, pairs in (("mcd_same_text_other_voice", text_pairs), ("mcd_same_voice_other_text", voice_pairs)):
        chosen = [pairs[i] for i in rng.choice(len(pairs), size=min(mcd_pairs, len(pairs)), replace=False)]
        results[key] = float(np.mean([mel_cepstral_distortion(waves[a.id], waves[b.id], rate) for a, b in chosen]))
    results["duration_gap_same_text_s"] = duration_error([a.seconds for a, _ in text_pairs],
                                                         [b.seconds for _, b in text_pairs])
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcd-pairs", type=int, default=60, help="pairs sampled per MCD row")
    args = parser.parse_args(argv)
    utterances = read_ljspeech(embedded_corpus())
    test, train = split(utterances, "test"), split(utterances, "train")
    start = time.perf_counter()
    r = measure(test, [u.text for u in train], mcd_pairs=args.mcd_pairs)
    voices = sorted({u.speaker for u in test})
    print(f"embedded test split: {len(test)} clips, {len({u.text for u in test})} sentences x {len(voices)} voices; "
          f"{time.perf_counter() - start:.0f} s on {cpu_model()}\n")
    print("| metric (real espeak-ng speech) | value |\n| --- | --- |")
    print(f"| WER, corpus language model | {r['wer_corpus']:.3f} |")
    print(f"| WER, default en-us language model | {r['wer_default']:.3f} |")
    print("| WER by voice, corpus LM | " + ", ".join(f"{v} {r['wer_corpus_by_voice'][v]:.2f}" for v in voices) + " |")
    print("| WER by voice, default LM | " + ", ".join(f"{v} {r['wer_default_by_voice'][v]:.2f}" for v in voices)
          + " |")
    print(f"| speaker similarity, same voice (different sentences) | {r['sim_same_voice']:.3f} |")
    print(f"| speaker similarity, different voices (same sentence) | {r['sim_other_voice_same_text']:.3f} |")
    print(f"| MCD-DTW, same sentence, different voices (dB) | {r['mcd_same_text_other_voice']:.2f} |")
    print(f"| MCD-DTW, same voice, different sentences (dB) | {r['mcd_same_voice_other_text']:.2f} |")
    print(f"| duration gap between voices reading one sentence (s) | {r['duration_gap_same_text_s']:.3f} |")
    print(f"| recogniser real-time factor, corpus / default LM | {r['recogniser_corpus_rtf']:.3f} / "
          f"{r['recogniser_default_rtf']:.3f} |")


if __name__ == "__main__":
    main()
