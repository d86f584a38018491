"""Speech corpora: the LJSpeech and LibriTTS layouts, the embedded espeak-ng corpus, and the splits.

Formats read
------------
* **LJSpeech** (Ito & Johnson 2017): ``<root>/metadata.csv`` with one row per
  clip, ``id|raw transcript|normalized transcript``, and ``<root>/wavs/<id>.wav``.
  The file is pipe-separated with no header and no quoting (transcripts hold
  quotes). The speaker is the folder's name (``"ljspeech"`` when it has none).
  A fourth field, when present, names the row's speaker: the embedded corpus
  uses it to keep several voices in one LJSpeech folder.
* **LibriTTS** (Zen et al. 2019): ``<root>/<speaker>/<chapter>/<id>.wav`` with
  the normalised transcript in ``<id>.normalized.txt`` beside it (``root`` is
  a subset folder such as ``train-clean-100``).

Every utterance's transcript must be non-empty and its audio readable (the
header is read for the duration; nothing is decoded). A bad row or file raises
an error naming it, or with ``skip_bad_samples`` is counted and skipped
(:func:`unidit.training.bad_samples.read_or_skip`).

Splits
------
:func:`split` is a pure function of the utterances. Texts, not clips, are
assigned to splits, so no sentence of the test split is heard in training.
The test split takes the texts spoken by *every* speaker of the corpus (so each
test sentence has a same-text, same-voice reference for every voice: speaker
similarity and MCD against it), at most ``test_fraction`` of the texts, in the
order of a hash of the text; when fewer than ten texts (or than the test
size) are shared, as in real multi-speaker data, it takes hashed texts instead. Validation takes the next ``val_fraction`` of
the remaining texts in hash order; training takes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
from unidit.tasks.tts.espeak import SAMPLE_RATE, VOICES, voice_named  # 22,050 Hz: LJSpeech's and espeak-ng's rate
from unidit.tasks.tts.sentences import sentences
from unidit.tasks.tts.synthesis import write_wavs
from unidit.training.bad_samples import read_or_skip
from unidit.training.export import write_folder_atomically
from unidit.training.model_cache import cache_root

SPLITS = ("train", "val", "test")
EMBEDDED_VERSION = "tts-embedded-v2"  # bump whenever the generated corpus changes
TEST_FRACTION = 0.05
VAL_FRACTION = 0.05
MIN_SHARED_TEXTS = 10  # fewer texts spoken by every voice than this (and than the test size): test on hashed texts


@dataclass(frozen=True)
class Utterance:
    """One spoken clip: ``text`` is its normalised transcript, ``seconds`` its duration."""

    id: str
    text: str
    wav: Path
    speaker: str
    seconds: float


# ------------------------------------------------------------------ readers
def read_ljspeech(root: str | os.PathLike, *, skip_bad_samples: bool = False) -> list[Utterance]:
    """The utterances of an LJSpeech folder (``metadata.csv`` + ``wavs/``), in file order."""
    root = Path(root)
    table = root / "metadata.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: LJSpeech metadata not found; expected rows 'id|raw text|normalized text' "
                                f"and the audio in {root / 'wavs'}/<id>.wav")
    lines = table.read_text(encoding="utf-8").splitlines()
    rows = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise ValueError(f"{table}: no rows; expected one row 'id|raw text|normalized text' per clip")
    default_speaker = root.resolve().name or "ljspeech"

    def read(item: tuple[int, str]) -> Utterance:
        number, line = item
        where = f"{table}, line {number}"
        fields = line.split("|")
        if len(fields) not in (3, 4):
            raise ValueError(f"{where}: {len(fields)} field(s); expected 3, 'id|raw text|normalized text' "
                             "(or a 4th, the speaker)")
        uid = fields[0].strip()
        if not uid:
            raise ValueError(f"{where}: empty id; expected e.g. 'LJ001-0001|raw text|normalized text'")
        text = check_transcript(fields[2], f"{where} ({uid})")
        speaker = fields[3].strip() if len(fields) == 4 and fields[3].strip() else default_speaker
        wav = root / "wavs" / f"{uid}.wav"
        return Utterance(uid, text, wav, speaker, audio_seconds(wav, where))

    utterances, _ = read_or_skip(rows, read, str(table), skip_bad_samples, what="rows")
    return utterances


def read_libritts(root: str | os.PathLike, *, skip_bad_samples: bool = False) -> list[Utterance]:
    """The utterances of a LibriTTS subset folder (``<speaker>/<chapter>/<id>.wav`` + ``.normalized.txt``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"LibriTTS folder not found: {root}")
    wavs = sorted(root.glob("*/*/*.wav"))
    if not wavs:
        raise FileNotFoundError(f"{root}: no LibriTTS audio; expected <speaker>/<chapter>/<id>.wav with "
                                "<id>.normalized.txt beside each")

    def read(wav: Path) -> Utterance:
        where = str(wav)
        transcript = wav.with_name(wav.stem + ".normalized.txt")
        if not transcript.is_file():
            raise FileNotFoundError(f"{where}: transcript {transcript.name} not found beside it")
        text = check_transcript(transcript.read_text(encoding="utf-8"), str(transcript))
        return Utterance(wav.stem, text, wav, wav.parent.parent.name, audio_seconds(wav, where))

    utterances, _ = read_or_skip(wavs, read, str(root), skip_bad_samples, what="clips")
    return utterances


def check_transcript(text: str | None, where: str) -> str:
    """A transcript with its whitespace collapsed, or a ValueError naming ``where`` if it is empty."""
    text = " ".join((text or "").split())
    if not text:
        raise ValueError(f"{where}: empty transcript; expected the words spoken in the clip")
    return text


def audio_seconds(path: Path, where: str) -> float:
    """The duration of an audio file from its header; errors name ``where`` and the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: audio file not found: {path}")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"{where}: could not read audio file {path}: expected a wav/flac/ogg file ({error})") from error
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError(f"{where}: audio file {path} holds no samples")
    return info.frames / info.samplerate


# ------------------------------------------------------------------ splits
def split(utterances: Sequence[Utterance], name: str, *, test_fraction: float = TEST_FRACTION,
          val_fraction: float = VAL_FRACTION) -> list[Utterance]:
    """The utterances of split ``name`` ("train", "val" or "test"), in input order (see the module docstring)."""
    if name not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
    assignment = split_texts(utterances, test_fraction=test_fraction, val_fraction=val_fraction)
    return [u for u in utterances if assignment[_text_key(u.text)] == name]


def split_texts(utterances: Sequence[Utterance], *, test_fraction: float = TEST_FRACTION,
                val_fraction: float = VAL_FRACTION) -> dict[str, str]:
    """The split of every text (keyed by its case-folded form)."""
    speakers_of: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        speakers_of[_text_key(u.text)].add(u.speaker)
    speakers = {u.speaker for u in utterances}
    texts = sorted(speakers_of, key=lambda text: hashlib.sha256(text.encode()).hexdigest())
    shared = [text for text in texts if speakers_of[text] == speakers]
    n_test = max(1, round(test_fraction * len(texts))) if len(texts) >= 3 else 0
    test = (shared if len(shared) >= min(n_test, MIN_SHARED_TEXTS) else texts)[:n_test]
    in_test = set(test)
    rest = [text for text in texts if text not in in_test]
    n_val = max(1, round(val_fraction * len(texts))) if len(rest) >= 2 else 0
    assignment = {text: "train" for text in rest[n_val:]}
    assignment.update({text: "val" for text in rest[:n_val]})
    assignment.update({text: "test" for text in test})
    return assignment


def _text_key(text: str) -> str:
    return " ".join(text.casefold().split())


def write_split_lists(root: Path, utterances: Sequence[Utterance]) -> None:
    """``<root>/splits/<split>.txt``: the ids of each split, one per line (what :func:`split` returns)."""
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        ids = [u.id for u in split(utterances, name)]
        (root / "splits" / f"{name}.txt").write_text("".join(f"{uid}\n" for uid in ids), encoding="utf-8")


# ------------------------------------------------------------------ the embedded corpus
@dataclass(frozen=True)
class EmbeddedCorpus:
    """What the embedded corpus holds; :meth:`key` names its cache folder.

    ``sentences`` texts are each spoken by one voice (voices taken in turn over
    a seeded shuffle), and ``shared_sentences`` texts by every voice, which
    :func:`split` puts in the test split. The default, 2,100 + 20 × 5 = 2,200
    utterances of 1.23-3.27 s (mean 2.40 s; 1.47 h of speech, 228 MB), synthesises
    in about 20 s on two busy cores and leaves 1,994 clips for training, 106 for
    validation and 100 (20 sentences × 5 voices) for testing.
    """

    seed: int = 0
    sentences: int = 2100
    shared_sentences: int = 20
    voices: tuple[str, ...] = ()  # speaker names from unidit.tasks.tts.espeak.VOICES; () = all

    def key(self) -> str:
        text = json.dumps({"version": EMBEDDED_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def embedded_corpus(root: str | os.PathLike | None = None, *, seed: int = 0, sentences: int = 2100,
                    shared_sentences: int = 20, voices: Sequence[str] = (), progress: bool = True) -> Path:
    """The embedded espeak-ng corpus as an LJSpeech folder (with a speaker field), written once; returns it.

    The folder is ``root`` or ``$UNIDIT_CACHE/tts/embedded-<hash of the parameters>``. It holds
    ``metadata.csv`` (``id|text|text|speaker``), ``wavs/<id>.wav`` (16-bit PCM, 22,050 Hz),
    ``splits/<split>.txt`` and ``corpus.json`` (the parameters; a folder whose ``corpus.json``
    matches is reused). It is written to a staging folder and renamed into place. Same parameters
    give the same files (:func:`unidit.tasks.tts.synthesis.write_wavs` runs espeak-ng from a fresh engine).
    """
    params = EmbeddedCorpus(seed, sentences, shared_sentences, tuple(voices))
    folder = Path(root) if root is not None else cache_root() / "tts" / f"embedded-{params.key()}"
    manifest = {"version": EMBEDDED_VERSION, **asdict(params), "voices": list(params.voices)}
    try:
        if json.loads((folder / "corpus.json").read_text()) == manifest and (folder / "metadata.csv").is_file():
            return folder
    except (OSError, ValueError):
        pass  # missing or damaged: write below
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "corpus.json").is_file():
        raise FileExistsError(f"{folder}: not empty and not an embedded corpus (no corpus.json); "
                              "name an empty or new folder")
    rows = _embedded_rows(params)

    def write(staging: Path) -> None:
        write_wavs(rows, staging / "wavs", progress)
        lines = [f"{uid}|{text}|{text}|{speaker}\n" for uid, text, speaker in rows]
        (staging / "metadata.csv").write_text("".join(lines), encoding="utf-8")
        write_split_lists(staging, read_ljspeech(staging))
        (staging / "corpus.json").write_text(json.dumps(manifest, indent=1) + "\n")

    write_folder_atomically(folder, write)
    return folder


def _embedded_rows(params: EmbeddedCorpus) -> list[tuple[str, str, str]]:
    """``(id, text, speaker)`` of every embedded utterance: single-voice texts, then shared ones."""
    voices = [voice_named(name) for name in params.voices] if params.voices else list(VOICES)
    if not voices:
        raise ValueError("the embedded corpus needs at least one voice")
    texts = sentences(params.sentences + params.shared_sentences, params.seed)  # single-voice ones first
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, 0x7755]))
    order = rng.permutation(params.sentences)
    rows = []
    for index, text in enumerate(texts[: params.sentences]):
        voice = voices[int(order[index]) % len(voices)]
        rows.append((f"{voice.name}-{index:05d}", text, voice.name))
    for index, text in enumerate(texts[params.sentences:], start=params.sentences):
        rows += [(f"{voice.name}-{index:05d}", text, voice.name) for voice in voices]
    return rows


def load_embedded(name: str, **corpus_options) -> list[Utterance]:
    """The utterances of one split of the embedded corpus (generated first if needed)."""
    return split(read_ljspeech(embedded_corpus(**corpus_options)), name)
