"""shape3d datasets: embedded primitives, ShapeNet PC15k and captioned mesh folders.

All three give a :class:`ShapeSet` of fixed-size clouds ``(M, N, 3)`` with one
caption and one integer label per cloud, the format DiT-3D (Mo et al. 2023)
trains on: PointFlow's PC15k (Yang et al. 2019) stores each ShapeNet model as
``<root>/<synset_id>/{train,val,test}/<model_id>.npy`` of shape ``(15000, 3)``
and models see 2048 points drawn from it (PVD, Zhou et al. 2021, §5).

Every :class:`ShapeSet` is in the training frame of :mod:`unidit.tasks.shape3d.frame`
(the frame the embedded primitives are made in) and keeps, in ``frames``, the
transform from each cloud's file units: PC15k and mesh folders are normalised
by dataset statistics on load, the embedded data needs nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from unidit.tasks.shape3d.frame import ShapeFrames
from unidit.tasks.shape3d.primitives import KINDS, ShapeSpec, caption, random_spec, sample_points
from unidit.tokenizers.meshes import load_points
from unidit.training.bad_samples import read_or_skip
from unidit.training.captions import MAX_CAPTION_CHARS, check_caption  # noqa: F401 (re-exported)
from unidit.training.model_cache import cache_root

EMBEDDED_VERSION = "shape3d-embedded-v2"  # bump whenever generated clouds change
SPLITS = ("train", "val", "test")

# The 13 ShapeNet categories most used by PointFlow / PVD / DiT-3D evaluations.
SYNSET_NAMES: dict[str, str] = {
    "02691156": "airplane", "02828884": "bench", "02933112": "cabinet", "02958343": "car",
    "03001627": "chair", "03211117": "display", "03636649": "lamp", "03691459": "loudspeaker",
    "04090263": "rifle", "04256520": "sofa", "04379243": "table", "04401088": "telephone",
    "04530566": "watercraft",
}


@dataclass
class ShapeSet:
    """Clouds with captions: ``points (M, N, 3)`` float32, ``labels (M,)`` int64.

    ``specs`` holds the primitive spec of each embedded cloud (None for real
    data); ``label_names[k]`` names label ``k`` (empty when unlabelled, -1).
    ``points`` are in the training frame; ``frames[i].from_frame(points[i])``
    gives cloud ``i`` back in its file's units, and ``frames.shared()`` maps
    generated clouds into those units (see :mod:`unidit.tasks.shape3d.frame`).
    ``frames`` defaults to the identity: clouds made in the frame (embedded).
    """

    points: np.ndarray
    captions: list[str]
    labels: np.ndarray
    specs: list[ShapeSpec | None] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    frames: ShapeFrames | None = None

    def __post_init__(self) -> None:
        if self.frames is None:
            self.frames = ShapeFrames.identity(len(self.points))
        elif len(self.frames) != len(self.points):
            raise ValueError(f"{len(self.frames)} frames for {len(self.points)} clouds")

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, index) -> "ShapeSet":
        """The clouds at ``index`` (an int array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        specs = [self.specs[i] for i in index] if self.specs else []
        return ShapeSet(self.points[index], [self.captions[i] for i in index], self.labels[index], specs,
                        list(self.label_names), self.frames.subset(index))

    def split(self, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)) -> dict[str, "ShapeSet"]:
        """Shuffle deterministically and cut into train / val / test.

        ``fractions`` are the val and test shares; each gets at least one
        cloud when there are three or more.
        """
        order = np.random.default_rng(seed).permutation(len(self))
        count = len(self)
        num_val, num_test = (max(1 if count >= 3 else 0, round(f * count)) for f in fractions)
        test, val = order[:num_test], order[num_test : num_test + num_val]
        return {"train": self.subset(order[num_test + num_val :]), "val": self.subset(val), "test": self.subset(test)}


@dataclass(frozen=True)
class ShapeSplits:
    """Parameters of the embedded data; its :meth:`key` names the cache folder."""

    seed: int = 0
    num_train: int = 2400
    num_val: int = 200
    num_test: int = 400
    num_points: int = 2048

    def key(self) -> str:
        text = json.dumps({"version": EMBEDDED_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}


def default_cache_dir() -> Path:
    """``$UNIDIT_CACHE`` or ``~/.cache/unidit``."""
    return cache_root()


def generate_embedded(
    seed: int = 0,
    num_train: int = 2400,
    num_val: int = 200,
    num_test: int = 400,
    num_points: int = 2048,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, ShapeSet]:
    """The embedded primitive dataset, generated once and cached on disk.

    Train and validation specs are drawn uniformly (kind, then attributes);
    the test split is balanced over kinds (``num_test // 8`` each, the rest
    spread over the first kinds).  Same parameters -> identical arrays.  The
    cache lives in ``<cache_dir>/shape3d/embedded-<hash>/`` and is written to a
    temporary folder first, then renamed into place.
    """
    params = ShapeSplits(seed, num_train, num_val, num_test, num_points)
    folder = Path(cache_dir or default_cache_dir()) / "shape3d" / f"embedded-{params.key()}"
    if (folder / "done.json").is_file():
        try:
            return {split: _read_split(folder, split) for split in SPLITS}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is regenerated below
    splits = _generate(params)
    _write_cache(folder, params, splits)
    return splits


def _generate(params: ShapeSplits) -> dict[str, ShapeSet]:
    seeds = np.random.SeedSequence(params.seed).spawn(len(SPLITS))
    out = {}
    for split, seq in zip(SPLITS, seeds):
        rng = np.random.default_rng(seq)
        count = params.sizes()[split]
        if split == "test":
            kinds = [KINDS[i % len(KINDS)] for i in range(count)]
            specs = [random_spec(rng, kind) for kind in kinds]
        else:
            specs = [random_spec(rng) for _ in range(count)]
        points = np.zeros((count, params.num_points, 3), dtype=np.float32)  # (M, N, 3)
        for i, spec in enumerate(specs):
            points[i] = sample_points(spec, params.num_points, rng)
        captions = [caption(spec, rng) for spec in specs]
        labels = np.array([spec.label for spec in specs], dtype=np.int64)
        out[split] = ShapeSet(points, captions, labels, list(specs), list(KINDS))
    return out


def _write_cache(folder: Path, params: ShapeSplits, splits: dict[str, ShapeSet]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for split, shapes in splits.items():
            np.savez(tmp / f"{split}.npz", points=shapes.points, labels=shapes.labels)
            meta = {"captions": shapes.captions, "specs": [s.to_dict() for s in shapes.specs]}
            (tmp / f"{split}.json").write_text(json.dumps(meta))
        (tmp / "done.json").write_text(json.dumps({"version": EMBEDDED_VERSION, **asdict(params)}))
        if folder.exists():  # a damaged or concurrently written cache
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        pass  # caching is an optimisation; e.g. another process won the rename
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_split(folder: Path, split: str) -> ShapeSet:
    with np.load(folder / f"{split}.npz") as arrays:
        points, labels = arrays["points"], arrays["labels"]
    meta = json.loads((folder / f"{split}.json").read_text())
    specs = [ShapeSpec(**spec) for spec in meta["specs"]]
    return ShapeSet(points, meta["captions"], labels, specs, list(KINDS))


class ShapeCloudDataset(Dataset):
    """Items ``{"points": (N, 3) float32 tensor, "caption": str, "label": int}``."""

    def __init__(self, shapes: ShapeSet) -> None:
        self.shapes = shapes

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> dict:
        return {
            "points": torch.from_numpy(np.ascontiguousarray(self.shapes.points[index])),  # (N, 3)
            "caption": self.shapes.captions[index],
            "label": int(self.shapes.labels[index]),
        }


# ------------------------------------------------------------ real formats
def load_pc15k(
    root: str | os.PathLike,
    synsets: list[str] | None = None,
    split: str = "train",
    num_points: int = 2048,
    seed: int = 0,
    scale: float | None = None,
) -> ShapeSet:
    """Read ShapeNet PC15k (PointFlow layout) as ``num_points``-point clouds in the training frame.

    Args:
        root: folder holding ``<synset_id>/<split>/<model_id>.npy``.
        synsets: synset ids to read (label = position in this list); all
            synset folders under ``root`` (sorted) when None.
        split: ``train``, ``val`` or ``test``.
        scale: the dataset scale (e.g. ``train.frames.scale``); by default the
            train split's, see below.
    Captions are "a <category>" ("an airplane") from :data:`SYNSET_NAMES` (unknown ids are
    used as their own name).  Each file is subsampled without replacement,
    deterministically from ``seed`` and the file's position.

    The clouds are normalised by dataset statistics of the **train** split, as
    PointFlow (Yang et al. 2019) and PVD do for PC15k, so every split shares one
    scale (:meth:`ShapeFrames.fit`: each cloud centred at its own bounding-box
    centre, the train clouds' 95th-percentile largest half-extent made 0.9).
    For ``val`` / ``test`` without ``scale`` the train split is read too, once
    per process (the scale is remembered per set of files, ``num_points`` and
    ``seed``).  The transforms are kept in the result's ``frames``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"PC15k root not found: {root} (expected <root>/<synset_id>/{split}/*.npy)")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    synsets, files = _pc15k_files(root, synsets, split)
    raw = _read_pc15k(files, num_points, seed)  # (M, N, 3) file units
    if scale is None:
        scale = _pc15k_train_scale(root, synsets, num_points, seed, raw if split == "train" else None)
    points, frames = _to_training_frame(raw, scale)
    names = [SYNSET_NAMES.get(s, s) for s in synsets]
    captions = [_with_article(names[label]) for label, _ in files]
    labels = np.array([label for label, _ in files], dtype=np.int64)
    return ShapeSet(points, captions, labels, [None] * len(files), names, frames)


def _pc15k_files(root: Path, synsets: list[str] | None, split: str) -> tuple[list[str], list[tuple[int, Path]]]:
    """The synset ids (all with a ``split`` folder when None) and ``(label, file)`` of each cloud."""
    if synsets is None:
        synsets = sorted(p.name for p in root.iterdir() if (p / split).is_dir())
        if not synsets:
            raise ValueError(f"{root}: no synset folders with a {split!r} split (expected <synset_id>/{split}/*.npy)")
    files: list[tuple[int, Path]] = []
    for label, synset in enumerate(synsets):
        folder = root / synset / split
        if not folder.is_dir():
            raise FileNotFoundError(f"PC15k split folder not found: {folder}")
        found = sorted(folder.glob("*.npy"))
        if not found:
            raise ValueError(f"{folder}: empty split, expected <model_id>.npy files")
        files += [(label, path) for path in found]
    return list(synsets), files


def _read_pc15k(files: list[tuple[int, Path]], num_points: int, seed: int) -> np.ndarray:
    """The ``(M, num_points, 3)`` clouds of ``files`` in their own units, file ``i`` subsampled from ``seed + i``."""
    return np.stack([load_points(path, num_points, seed=seed + i) for i, (_, path) in enumerate(files)])


# Train-split scales computed in this process, keyed by the train files (path, mtime, size),
# num_points and seed, so loading val and test after train does not read the train split again.
_PC15K_TRAIN_SCALES: dict[tuple, float] = {}
_PC15K_TRAIN_SCALES_KEPT = 8


def _pc15k_train_scale(
    root: Path, synsets: list[str], num_points: int, seed: int, train_clouds: np.ndarray | None
) -> float:
    """The dataset scale of the train split (``train_clouds`` when they are already read)."""
    try:
        _, files = _pc15k_files(root, synsets, "train")
    except (OSError, ValueError) as error:
        raise type(error)(
            f"{error} (val and test clouds are scaled by the train split's statistics; pass scale= instead)"
        ) from error
    stats = [(path.resolve(), path.stat()) for _, path in files]
    key = (num_points, seed, tuple((str(path), stat.st_mtime_ns, stat.st_size) for path, stat in stats))
    if key not in _PC15K_TRAIN_SCALES:
        clouds = train_clouds if train_clouds is not None else _read_pc15k(files, num_points, seed)  # (M, N, 3)
        _PC15K_TRAIN_SCALES[key] = ShapeFrames.fit(clouds).scale
        while len(_PC15K_TRAIN_SCALES) > _PC15K_TRAIN_SCALES_KEPT:
            _PC15K_TRAIN_SCALES.pop(next(iter(_PC15K_TRAIN_SCALES)))
    return _PC15K_TRAIN_SCALES[key]


def _to_training_frame(clouds: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, ShapeFrames]:
    """``(M, N, 3)`` clouds in file units -> float32 clouds in the training frame, and their frames.

    Dataset statistics (:meth:`ShapeFrames.fit`); ``scale`` fixes the shared scale.
    """
    frames = ShapeFrames.fit(clouds, scale=scale)
    return frames.to_frame(clouds).astype(np.float32), frames


def _with_article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def load_mesh_folder(
    root: str | os.PathLike,
    captions_csv: str | os.PathLike,
    num_points: int = 2048,
    seed: int = 0,
    skip_bad_samples: bool = False,
) -> ShapeSet:
    """Read captioned shapes listed by a CSV with columns ``file,caption`` (optional ``label``).

    ``file`` is relative to ``root`` and must stay inside it; any format
    :func:`unidit.tokenizers.meshes.load_points` reads is accepted.  A
    relative ``captions_csv`` is looked up under ``root`` if not found as is.
    Labels come from the ``label`` column, else -1 (no class).  Captions must
    hold 1 to :data:`MAX_CAPTION_CHARS` characters.

    Every problem raises an error naming the CSV line and the file; with
    ``skip_bad_samples`` bad rows are skipped instead, counted and printed
    (an error is still raised when no row is usable).

    The clouds are returned in the training frame, normalised by dataset
    statistics of the whole folder (:meth:`ShapeFrames.fit`: each cloud centred
    at its own bounding-box centre, one scale mapping the 95th-percentile
    largest half-extent to 0.9), so relative sizes between the shapes survive.
    The statistic covers the held-out shapes too, since the folder is split into
    train / val / test only after loading (:meth:`ShapeSet.split`); it is one
    number, a percentile that no single shape moves much.  The transforms are
    kept in ``frames``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"mesh folder not found: {root}")
    table = Path(captions_csv)
    if not table.is_file() and not table.is_absolute() and (root / table).is_file():
        table = root / table
    if not table.is_file():
        raise FileNotFoundError(f"captions CSV not found: {captions_csv} (looked in {root} too)")
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file", "caption"} <= set(reader.fieldnames):
            raise ValueError(f"{table}: expected a header with columns 'file,caption', got {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{table}: no rows; expected one 'file,caption' row per shape")
    resolved_root = root.resolve()
    rows_read, skipped = read_or_skip(
        list(enumerate(rows, start=2)),
        lambda item: _read_row(item[1], table, item[0], root, resolved_root, num_points, seed + item[0] - 2),
        str(table), skip_bad_samples, what="rows",
    )
    clouds, captions, labels = (list(column) for column in zip(*rows_read))
    points, frames = _to_training_frame(np.stack(clouds))  # (M, N, 3) training frame
    result = ShapeSet(points, captions, np.array(labels, dtype=np.int64), [None] * len(clouds), [], frames)
    result.skipped = skipped  # type: ignore[attr-defined]
    return result


def _read_row(row: dict, table: Path, line: int, root: Path, resolved_root: Path, num_points: int, seed: int):
    where = f"{table}, line {line}"
    name = (row.get("file") or "").strip()
    if not name:
        raise ValueError(f"{where}: empty 'file' field; expected a path relative to {root}")
    text = check_caption(row.get("caption") or "", f"{where} ({name})")
    path = (root / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(resolved_root):
        raise ValueError(f"{where}: file {name!r} must be a relative path inside {root}")
    raw_label = (row.get("label") or "").strip()
    try:
        label = int(raw_label) if raw_label else -1
    except ValueError:
        raise ValueError(f"{where}: label {raw_label!r} of {name!r} is not an integer") from None
    try:
        cloud = load_points(path, num_points, seed=seed)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{where}: {error}") from error
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    return cloud, text, label
