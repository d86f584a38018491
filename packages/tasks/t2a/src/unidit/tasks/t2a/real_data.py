"""Captioned audio in the AudioCaps and Clotho layouts.

AudioCaps (Kim et al. 2019) ships one CSV per split with the columns
``audiocap_id,youtube_id,start_time,caption``: one caption of a 10 s YouTube
excerpt starting at ``start_time`` seconds.  The audio is not distributed;
download tools name the files in a few ways, all accepted here (first found
wins), under ``<root>`` or ``<root>/<split>``:

* ``<youtube_id>_<start_time>.wav`` (start as written in the CSV, and as an
  integer, e.g. ``abc_30.wav`` for ``30`` or ``30.0``);
* ``Y<youtube_id>.wav`` (the AudioSet convention) and ``<youtube_id>.wav``;
* any of these with ``.flac`` or ``.ogg`` instead of ``.wav``.

Clotho (Drossos et al. 2020) ships ``clotho_captions_<split>.csv`` with
``file_name,caption_1,...,caption_5``: five captions of one 15-30 s clip,
found at ``<root>/<file_name>`` or ``<root>/<split>/<file_name>``.  Each
caption becomes one training pair (``all_captions``) or only the first one.

Clips are resampled on load and cropped to ``max_seconds``.  Missing files,
missing columns and empty captions raise errors naming the CSV line and the
file; with ``skip_bad_samples`` such rows are counted, printed and skipped.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from unidit.tasks.t2a.data import ClipSet
from unidit.tokenizers.audio_io import AUDIO_SUFFIXES, load_audio
from unidit.training.bad_samples import read_or_skip
from unidit.training.captions import MAX_CAPTION_CHARS, check_caption  # noqa: F401 (re-exported)

AUDIOCAPS_COLUMNS = ("youtube_id", "start_time", "caption")
CLOTHO_CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))



def audiocaps_candidates(youtube_id: str, start_time: str) -> list[str]:
    """File names an AudioCaps row may have, in the order they are tried."""
    stems = [f"{youtube_id}_{start_time}"]
    try:
        start = float(start_time)
        if start.is_integer():
            stems += [f"{youtube_id}_{int(start)}", f"{youtube_id}_{start:.1f}"]
    except ValueError:
        pass
    stems += [f"Y{youtube_id}", youtube_id]
    return [stem + suffix for stem in dict.fromkeys(stems) for suffix in AUDIO_SUFFIXES]


def load_audiocaps(root: str | os.PathLike, csv_path: str | os.PathLike, *, split: str = "", sample_rate: int = 16000,
                   max_seconds: float = 10.0, skip_bad_samples: bool = False) -> ClipSet:
    """Read an AudioCaps CSV and its audio files (see the module docstring for the naming)."""
    root, table, rows = _open_table(root, csv_path, AUDIOCAPS_COLUMNS)
    folders = _folders(root, split)

    def read(row: dict, where: str) -> list[tuple[np.ndarray, str]]:
        youtube_id = (row.get("youtube_id") or "").strip()
        start_time = (row.get("start_time") or "").strip()
        if not youtube_id or not start_time:
            raise ValueError(f"{where}: empty youtube_id or start_time; expected e.g. '-0Gj8-vB1q4,30'")
        text = check_caption(row.get("caption"), f"{where} ({youtube_id})")
        path = _find(folders, audiocaps_candidates(youtube_id, start_time), where,
                     f"{youtube_id}_{start_time}.wav, Y{youtube_id}.wav or {youtube_id}.wav")
        return [(_load(path, sample_rate, max_seconds, where), text)]

    return _read_rows(table, rows, read, sample_rate, skip_bad_samples)


def load_clotho(root: str | os.PathLike, csv_path: str | os.PathLike, *, split: str = "", sample_rate: int = 16000,
                max_seconds: float = 10.0, all_captions: bool = True, skip_bad_samples: bool = False) -> ClipSet:
    """Read a Clotho captions CSV and its audio; one pair per caption (or per file)."""
    root, table, rows = _open_table(root, csv_path, ("file_name", CLOTHO_CAPTION_COLUMNS[0]))
    folders = _folders(root, split)

    def read(row: dict, where: str) -> list[tuple[np.ndarray, str]]:
        name = (row.get("file_name") or "").strip()
        if not name:
            raise ValueError(f"{where}: empty file_name; expected an audio file name such as 'clip.wav'")
        columns = CLOTHO_CAPTION_COLUMNS if all_captions else CLOTHO_CAPTION_COLUMNS[:1]
        present = [column for column in columns if column in row]
        texts = [check_caption(row.get(column), f"{where} ({name}, {column})") for column in present]
        audio = _load(_find(folders, [name], where, name), sample_rate, max_seconds, where)
        return [(audio, text) for text in texts]

    return _read_rows(table, rows, read, sample_rate, skip_bad_samples)


# ------------------------------------------------------------------ shared reading
def _open_table(root, csv_path, required: tuple[str, ...]) -> tuple[Path, Path, list[dict]]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder not found: {root}")
    table = Path(csv_path)
    if not table.is_file() and not table.is_absolute() and (root / table).is_file():
        table = root / table
    if not table.is_file():
        raise FileNotFoundError(f"captions CSV not found: {csv_path} (looked in {root} too)")
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{table}: missing column(s) {missing}; expected a header with {list(required)}, "
                             f"got {columns}")
        rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    if not rows:
        raise ValueError(f"{table}: no rows; expected one row per clip")
    return root, table, rows


def _folders(root: Path, split: str) -> list[Path]:
    return [root, root / split] if split else [root]


def _find(folders: list[Path], names: list[str], where: str, expected: str) -> Path:
    for folder in folders:
        for name in names:
            path = folder / name
            if path.is_file():
                return path
    looked = " or ".join(str(f) for f in folders)
    raise FileNotFoundError(f"{where}: audio file not found in {looked}; expected {expected}")


def _load(path: Path, sample_rate: int, max_seconds: float, where: str) -> np.ndarray:
    try:
        audio = load_audio(path, sample_rate)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    return audio[: int(round(max_seconds * sample_rate))]


def _read_rows(table: Path, rows: list[dict], read, sample_rate: int, skip_bad_samples: bool) -> ClipSet:
    per_row, _ = read_or_skip(list(enumerate(rows, start=2)), lambda item: read(item[1], f"{table}, line {item[0]}"),
                              str(table), skip_bad_samples, what="rows")
    waveforms = [audio for pairs in per_row for audio, _ in pairs]
    captions = [text for pairs in per_row for _, text in pairs]
    return ClipSet(waveforms, captions, sample_rate, [None] * len(waveforms))
