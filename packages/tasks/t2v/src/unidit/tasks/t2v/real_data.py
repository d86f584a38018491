"""Real captioned video sets: a WebVid-style CSV or an MSR-VTT JSON over a folder of clips.

* WebVid-10M (Bain et al. 2021, "Frozen in Time") ships its captions as CSV
  rows ``videoid,contentUrl,duration,page_dir,name``; ``name`` is the caption.
  A downloaded clip is read from ``<root>/<videoid>.mp4`` or
  ``<root>/<page_dir>/<videoid>.mp4`` (the layout of the common downloaders).
* MSR-VTT (Xu et al. 2016) ships a JSON with ``videos`` (``video_id`` such as
  ``"video0"``, optionally ``split``: train / validate / test) and
  ``sentences`` (``video_id``, ``caption``; about 20 per clip); a clip is read
  from ``<root>/<video_id>.mp4``.

Clips are decoded with PyAV (:func:`unidit.tokenizers.video_io.read_video`):
optionally resampled to ``fps``, resized by the shorter side and centre-cropped
to ``size``, and cut to ``num_frames`` (1 + k * temporal compression for a
causal VAE).  Every problem raises an error naming the file (and CSV line or
JSON entry); with ``skip_bad_samples`` bad entries are skipped, counted and
printed instead.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from unidit.tasks.t2v.data import VideoSet
from unidit.tokenizers.video_io import read_video
from unidit.training.bad_samples import read_or_skip
from unidit.training.captions import MAX_CAPTION_CHARS, check_caption  # noqa: F401 (re-exported)

WEBVID_COLUMNS = ("videoid", "name")
MSRVTT_SPLITS = {"train": "train", "val": "validate", "test": "test"}
_SPLIT_OF_MSRVTT = {value: key for key, value in MSRVTT_SPLITS.items()}



def load_webvid(
    root: str | os.PathLike,
    captions_csv: str | os.PathLike,
    *,
    num_frames: int = 17,
    size: int = 64,
    fps: float | None = None,
    skip_bad_samples: bool = False,
) -> VideoSet:
    """Read the clips a WebVid-style CSV lists (columns ``videoid`` and ``name`` required).

    A relative ``captions_csv`` is looked up under ``root`` if not found as is.
    """
    root = _existing_folder(root, "WebVid clip folder")
    table = _existing_file(captions_csv, root, "WebVid captions CSV")
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(WEBVID_COLUMNS) <= set(reader.fieldnames):
            raise ValueError(
                f"{table}: expected a header with columns 'videoid,contentUrl,duration,page_dir,name' "
                f"(at least videoid and name), got {reader.fieldnames}"
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{table}: no rows; expected one 'videoid,...,name' row per clip")
    resolved = root.resolve()

    def read_row(item: tuple[int, dict]) -> tuple[np.ndarray, str]:
        line, row = item
        where = f"{table}, line {line}"
        video_id = (row.get("videoid") or "").strip()
        if not video_id:
            raise ValueError(f"{where}: empty 'videoid'; expected the clip's file stem")
        text = check_caption(row.get("name") or "", f"{where} (videoid {video_id})")
        page_dir = (row.get("page_dir") or "").strip()
        candidates = [root / f"{video_id}.mp4"] + ([root / page_dir / f"{video_id}.mp4"] if page_dir else [])
        for path in candidates:
            _inside(path, resolved, where)
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{where}: clip not found; looked for {' and '.join(map(str, candidates))}")
        return _read_clip(path, where, num_frames, size, fps), text

    return _collect(enumerate(rows, start=2), read_row, str(table), skip_bad_samples, len(rows))


def load_msrvtt(
    root: str | os.PathLike,
    annotations_json: str | os.PathLike,
    *,
    split: str | None = None,
    num_frames: int = 17,
    size: int = 64,
    fps: float | None = None,
    captions_per_video: int = 1,
    skip_bad_samples: bool = False,
) -> VideoSet:
    """Read MSR-VTT clips and their captions.

    Args:
        split: ``train``, ``val`` or ``test`` keeps the videos whose ``split`` field is
            ``train``, ``validate`` or ``test``; None keeps every video.
        captions_per_video: each clip appears once per caption, up to this many
            (its first captions in file order).
    ``groups`` of the result name each clip's split (train / val / test) where
    the JSON gives one, so :meth:`VideoSet.split` keeps MSR-VTT's own split.
    """
    root = _existing_folder(root, "MSR-VTT clip folder")
    path = _existing_file(annotations_json, root, "MSR-VTT annotation JSON")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), list) or not isinstance(
        meta.get("sentences"), list
    ):
        raise ValueError(f"{path}: expected a JSON object with lists 'videos' and 'sentences' (MSR-VTT format)")
    if split is not None and split not in MSRVTT_SPLITS:
        raise ValueError(f"split must be one of {sorted(MSRVTT_SPLITS)} or None, got {split!r}")
    if captions_per_video < 1:
        raise ValueError(f"captions_per_video must be >= 1, got {captions_per_video}")
    captions: dict[str, list[str]] = {}
    for number, sentence in enumerate(meta["sentences"]):
        if not isinstance(sentence, dict) or "video_id" not in sentence:
            raise ValueError(f"{path}: sentences[{number}] must be an object with 'video_id' and 'caption'")
        captions.setdefault(str(sentence["video_id"]), []).append(sentence.get("caption") or "")
    entries = []
    for number, video in enumerate(meta["videos"]):
        if not isinstance(video, dict) or not str(video.get("video_id") or "").strip():
            raise ValueError(f"{path}: videos[{number}] must be an object with a non-empty 'video_id'")
        if split is None or video.get("split", MSRVTT_SPLITS[split]) == MSRVTT_SPLITS[split]:
            entries.append((number, video))
    if not entries:
        raise ValueError(f"{path}: no videos{f' in split {split!r}' if split else ''}")
    resolved = root.resolve()

    def read_video_entry(item: tuple[int, dict]) -> tuple[np.ndarray, list[tuple[str, str]]]:
        number, video = item
        video_id = str(video["video_id"]).strip()
        where = f"{path}, videos[{number}] ({video_id})"
        texts = captions.get(video_id, [])
        if not texts:
            raise ValueError(f"{where}: no sentences with this video_id; expected at least one caption")
        texts = [check_caption(t, f"{where}, caption {i}") for i, t in enumerate(texts[:captions_per_video])]
        group = _SPLIT_OF_MSRVTT.get(str(video.get("split", "")), "")
        clip_path = root / f"{video_id}.mp4"
        _inside(clip_path, resolved, where)
        if not clip_path.is_file():
            raise FileNotFoundError(f"{where}: clip not found at {clip_path}")
        return _read_clip(clip_path, where, num_frames, size, fps), [(text, group) for text in texts]

    per_video = _collect(entries, read_video_entry, str(path), skip_bad_samples, len(entries))
    counts = [len(texts) for texts in per_video.captions]
    videos = np.repeat(per_video.videos, counts, axis=0)  # (sum of captions, F, H, W, 3)
    flat = [text for texts in per_video.captions for text, _ in texts]
    groups = [group for texts in per_video.captions for _, group in texts]
    result = VideoSet(videos, flat, groups=groups)
    result.skipped = per_video.skipped  # type: ignore[attr-defined]
    return result


# ------------------------------------------------------------------ shared pieces
def _existing_folder(root: str | os.PathLike, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} not found: {root}")
    return root


def _existing_file(name: str | os.PathLike, root: Path, what: str) -> Path:
    path = Path(name)
    if not path.is_file() and not path.is_absolute() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {name} (looked in {root} too)")
    return path


def _inside(path: Path, resolved_root: Path, where: str) -> None:
    if not path.resolve().is_relative_to(resolved_root):
        raise ValueError(f"{where}: clip path {path} leaves the clip folder {resolved_root}")


def _read_clip(path: Path, where: str, num_frames: int, size: int, fps: float | None) -> np.ndarray:
    try:
        return read_video(path, num_frames=num_frames, size=size, fps=fps)  # (F, H, W, 3)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{where}: {error}") from error
    except ValueError as error:
        raise ValueError(f"{where}: {error} (expected a decodable clip of at least {num_frames} frames)") from error


def _collect(items: Iterable, read: Callable, source: str, skip_bad_samples: bool, total: int) -> VideoSet:
    """Read every item with ``read -> (clip, caption(s))``; skip and count failures when asked."""
    pairs, skipped = read_or_skip(items, read, str(source), skip_bad_samples, total=total)
    clips, captions = [clip for clip, _ in pairs], [text for _, text in pairs]
    result = VideoSet(np.stack(clips), captions)
    result.skipped = skipped  # type: ignore[attr-defined]
    return result
