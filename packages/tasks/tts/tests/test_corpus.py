"""The TTS corpus: the espeak-ng generator, the LJSpeech / LibriTTS readers, their errors, and the splits."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from unidit.tasks.tts.corpus import (
    SAMPLE_RATE,
    SPLITS,
    Utterance,
    embedded_corpus,
    read_libritts,
    read_ljspeech,
    split,
)
from unidit.tasks.tts.espeak import VOICES, Voice, synthesize
from unidit.tasks.tts.sentences import sentences, vocabulary

TINY = dict(sentences=2, shared_sentences=1, voices=("us_klatt1", "us_f5"), progress=False)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """2 single-voice sentences + 1 sentence spoken by both voices: 4 clips."""
    return embedded_corpus(tmp_path_factory.mktemp("tts") / "corpus", **TINY)


def _write_wav(path: Path, seconds: float = 0.5, rate: int = SAMPLE_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t), rate, subtype="PCM_16")


# ------------------------------------------------------------------ the generator
def test_sentences_are_seeded_distinct_and_digit_free():
    drawn = sentences(300, seed=3)
    assert drawn == sentences(300, seed=3)
    assert drawn != sentences(300, seed=4)
    assert len(set(drawn)) == 300
    words = vocabulary()
    for text in drawn:
        assert not re.search(r"\d", text)
        assert text[0].isupper() and text[-1] in ".?!"
        assert set(re.findall(r"[a-z]+", text.lower())) <= words


def test_espeak_voices_differ_and_bad_input_is_refused():
    text = "Please open the window slowly."
    clips = {voice.name: synthesize(text, voice) for voice in VOICES}
    for clip in clips.values():
        assert clip.dtype == np.int16 and 1.0 < len(clip) / SAMPLE_RATE < 3.5
    assert len({clip.tobytes() for clip in clips.values()}) == len(VOICES)  # every voice sounds different
    with pytest.raises(ValueError, match="empty text"):
        synthesize("  ", VOICES[0])
    with pytest.raises(ValueError, match="unknown voice 'xx-nowhere'"):
        synthesize(text, Voice("nobody", "xx-nowhere"))


def test_embedded_corpus_is_a_valid_ljspeech_folder(tiny_corpus):
    rows = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 4
    for row in rows:
        uid, raw, normalized, speaker = row.split("|")
        assert raw == normalized and speaker in TINY["voices"]
        info = soundfile.info(str(tiny_corpus / "wavs" / f"{uid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert 0.8 < info.frames / SAMPLE_RATE < 5.0  # a 4-9 word sentence
        audio, _ = soundfile.read(str(tiny_corpus / "wavs" / f"{uid}.wav"))
        assert np.abs(audio).max() > 0.05  # speech, not silence
    utterances = read_ljspeech(tiny_corpus)
    assert [u.id for u in utterances] == [row.split("|")[0] for row in rows]
    listed = {name: (tiny_corpus / "splits" / f"{name}.txt").read_text().split() for name in SPLITS}
    assert sorted(sum(listed.values(), [])) == sorted(u.id for u in utterances)
    for name in SPLITS:
        assert listed[name] == [u.id for u in split(utterances, name)]
    test = split(utterances, "test")
    assert {u.speaker for u in test} == set(TINY["voices"]) and len({u.text for u in test}) == 1


def test_embedded_corpus_is_reused_and_reproducible(tiny_corpus, tmp_path):
    stamp = (tiny_corpus / "metadata.csv").stat().st_mtime_ns
    assert embedded_corpus(tiny_corpus, **TINY) == tiny_corpus
    assert (tiny_corpus / "metadata.csv").stat().st_mtime_ns == stamp
    # this process's engine is now used, so the copy is synthesised in a fresh process: same bytes
    again = embedded_corpus(tmp_path / "again", **TINY)
    names = sorted(p.name for p in (tiny_corpus / "wavs").iterdir())
    assert names == sorted(p.name for p in (again / "wavs").iterdir())
    assert all(filecmp.cmp(tiny_corpus / "wavs" / n, again / "wavs" / n, shallow=False) for n in names)
    assert filecmp.cmp(tiny_corpus / "metadata.csv", again / "metadata.csv", shallow=False)


def test_embedded_corpus_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an embedded corpus"):
        embedded_corpus(tmp_path, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# ------------------------------------------------------------------ LJSpeech
def _ljspeech(root: Path, rows: list[str], wavs: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for uid in wavs:
        _write_wav(root / "wavs" / f"{uid}.wav")
    return root


def test_read_ljspeech_real_layout(tmp_path):
    root = _ljspeech(tmp_path / "LJSpeech-1.1",
                     ['LJ001-0001|Printing, in 1st sense "of" art|Printing, in first sense "of" art',
                      "LJ001-0002|in being comparatively modern.|in being comparatively modern."],
                     ["LJ001-0001", "LJ001-0002"])
    first, second = read_ljspeech(root)
    assert first == Utterance("LJ001-0001", 'Printing, in first sense "of" art', root / "wavs" / "LJ001-0001.wav",
                              "LJSpeech-1.1", pytest.approx(0.5))
    assert second.text == "in being comparatively modern." and second.speaker == "LJSpeech-1.1"


@pytest.mark.parametrize(
    "rows, wavs, error, message",
    [
        (["LJ1|only two"], ["LJ1"], ValueError, r"metadata.csv, line 1: 2 field\(s\); expected 3"),
        (["LJ1|a|b", "LJ2|raw text| "], ["LJ1", "LJ2"], ValueError, r"line 2 \(LJ2\): empty transcript"),
        (["LJ1|a|b", "LJ2|a|b"], ["LJ1"], FileNotFoundError, r"line 2: audio file not found: .*LJ2.wav"),
        (["|a|b"], [], ValueError, r"line 1: empty id"),
    ],
)
def test_read_ljspeech_errors_name_the_row(tmp_path, rows, wavs, error, message):
    root = _ljspeech(tmp_path / "lj", rows, wavs)
    with pytest.raises(error, match=message):
        read_ljspeech(root)


def test_read_ljspeech_missing_metadata_and_unreadable_audio(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metadata.csv: LJSpeech metadata not found"):
        read_ljspeech(tmp_path)
    root = _ljspeech(tmp_path / "lj", ["LJ1|a|good clip", "LJ2|b|broken clip"], ["LJ1"])
    (root / "wavs" / "LJ2.wav").write_bytes(b"RIFF this is not audio")
    with pytest.raises(ValueError, match=r"line 2: could not read audio file .*LJ2.wav"):
        read_ljspeech(root)
    kept = read_ljspeech(root, skip_bad_samples=True)
    assert [u.id for u in kept] == ["LJ1"]


# ------------------------------------------------------------------ LibriTTS
def test_read_libritts_layout_and_errors(tmp_path):
    root = tmp_path / "train-clean-100"
    for speaker, chapter, uid, text in [("19", "198", "19_198_000000_000000", "Northanger Abbey."),
                                        ("26", "495", "26_495_000004_000000", "  It was a   cold day. ")]:
        _write_wav(root / speaker / chapter / f"{uid}.wav", seconds=0.25, rate=24000)
        (root / speaker / chapter / f"{uid}.normalized.txt").write_text(text)
        (root / speaker / chapter / f"{uid}.original.txt").write_text(text.upper())
    first, second = read_libritts(root)
    assert (first.id, first.speaker, first.text) == ("19_198_000000_000000", "19", "Northanger Abbey.")
    assert (second.speaker, second.text, second.seconds) == ("26", "It was a cold day.", pytest.approx(0.25))
    (root / "26" / "495" / "26_495_000004_000000.normalized.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"26_495_000004_000000.wav: transcript .*normalized.txt not found"):
        read_libritts(root)
    with pytest.raises(FileNotFoundError, match="no LibriTTS audio"):
        read_libritts(tmp_path / "train-clean-100" / "19")


# ------------------------------------------------------------------ splits
def _utterances(texts_by_speaker: dict[str, list[str]]) -> list[Utterance]:
    return [Utterance(f"{speaker}-{i}", text, Path(f"{speaker}-{i}.wav"), speaker, 1.0)
            for speaker, texts in texts_by_speaker.items() for i, text in enumerate(texts)]


def test_split_partitions_texts_and_tests_on_shared_sentences():
    shared = [f"shared sentence {i}." for i in range(12)]
    corpus = _utterances({voice: [f"{voice} says line {i}." for i in range(60)] + shared
                          for voice in ("a", "b", "c")})
    parts = {name: split(corpus, name) for name in SPLITS}
    ids = [u.id for name in SPLITS for u in parts[name]]
    assert sorted(ids) == sorted(u.id for u in corpus)  # a partition
    texts = {name: {u.text for u in parts[name]} for name in SPLITS}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["val"])
    assert texts["test"] and texts["test"] <= set(shared)  # only sentences every voice speaks
    for text in texts["test"]:
        assert {u.speaker for u in parts["test"] if u.text == text} == {"a", "b", "c"}
    assert parts["val"] and len(parts["train"]) > len(parts["val"])
    shuffled = [corpus[i] for i in np.random.default_rng(0).permutation(len(corpus))]
    for name in SPLITS:
        assert sorted(u.id for u in split(shuffled, name)) == sorted(u.id for u in parts[name])


def test_split_with_too_few_shared_texts_tests_on_hashed_texts():
    corpus = _utterances({voice: [f"{voice} line {i}." for i in range(40)] + ["chapter one."] for voice in "ab"})
    test = split(corpus, "test")
    assert len({u.text for u in test}) == round(0.05 * 81)  # one shared text is too few to test on alone
    assert len(test) < len(corpus) // 5
    with pytest.raises(ValueError, match="split must be one of"):
        split(corpus, "dev")
