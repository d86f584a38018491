"""Embedded caption data: rendered shape scenes with several captions each, in COCO captions layout.

Each split is drawn from its own seed stream (``SeedSequence(seed).spawn``), so
asking for ``val`` never renders ``train``. The three splits are written once, together and atomically, to
``<cache root>/caption/scenes-<hash>/`` as ``captions_<split>.json`` (COCO
captions: ``images`` + ``annotations``; every image entry also carries the
scene's true ``objects``) and ``images/<split>_<n>.png``, and read back with the
same loader as real COCO files (:func:`unidit.tasks.caption.data.read_coco_captions`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from unidit.tasks.caption.data import CaptionSet, read_coco_captions
from unidit.tasks.caption.scene_draw import COLOURS, IMAGE_SIZE, SHAPES, SIZES, random_scene, render_scene
from unidit.tasks.caption.scene_language import caption_scene
from unidit.training.export import write_folder_atomically
from unidit.training.model_cache import cache_root

SCENES_VERSION = "caption-scenes-v1"  # bump whenever rendered scenes or captions change
SPLITS = ("train", "val", "test")
SPLIT_SIZES = {"train": 2000, "val": 200, "test": 200}
CAPTIONS_PER_IMAGE = 5  # as in COCO


def scene_folder(seed: int = 0, sizes: dict[str, int] | None = None, captions_per_image: int = CAPTIONS_PER_IMAGE,
                 cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder of one configuration: ``<cache root>/caption/scenes-<hash of the configuration>``."""
    config = {"version": SCENES_VERSION, "seed": seed, "sizes": {**SPLIT_SIZES, **(sizes or {})},
              "captions_per_image": captions_per_image, "image_size": IMAGE_SIZE,
              "shapes": SHAPES, "colours": COLOURS, "sizes_px": SIZES}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "caption" / f"scenes-{key}"


def scene_split(split: str, *, seed: int = 0, sizes: dict[str, int] | None = None,
                captions_per_image: int = CAPTIONS_PER_IMAGE, cache_dir: str | os.PathLike | None = None) -> CaptionSet:
    """One split of the embedded scenes (rendered and cached on first use); same arguments, same data.

    ``sizes`` overrides the number of scenes of some splits (tests use a few dozen).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = scene_folder(seed, sizes, captions_per_image, cache_dir)
    if not all((folder / f"captions_{name}.json").is_file() for name in SPLITS):
        counts = {**SPLIT_SIZES, **(sizes or {})}
        write_folder_atomically(folder, lambda staging: [
            write_scene_split(staging, name, seed, counts[name], captions_per_image) for name in SPLITS])
    return read_coco_captions(folder / f"captions_{split}.json", folder / "images")


def generate_scenes(split: str, seed: int, count: int, captions_per_image: int = CAPTIONS_PER_IMAGE):
    """``(objects, captions)`` per scene of a split, without rendering or writing anything."""
    stream = np.random.SeedSequence(seed).spawn(len(SPLITS))[SPLITS.index(split)]
    rng = np.random.default_rng(stream)
    scenes = []
    for i in range(count):
        objects = random_scene(rng, count=1 + i % 3)  # 1, 2 and 3 objects equally often
        scenes.append((objects, [caption_scene(objects, rng) for _ in range(captions_per_image)]))
    return scenes


def write_scene_split(folder: Path, split: str, seed: int, count: int, captions_per_image: int) -> Path:
    """Render a split into ``folder`` in COCO captions layout; returns the annotation file."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index, (objects, captions) in enumerate(generate_scenes(split, seed, count, captions_per_image)):
        name = f"{split}_{index:06d}.png"
        Image.fromarray(render_scene(objects)).save(folder / "images" / name)
        images.append({"id": index, "file_name": name, "width": IMAGE_SIZE, "height": IMAGE_SIZE,
                       "objects": [o.to_dict() for o in objects]})
        annotations += [{"id": len(annotations), "image_id": index, "caption": text} for text in captions]
    path = folder / f"captions_{split}.json"
    path.write_text(json.dumps({"info": {"description": f"unidit embedded scenes, {split}", "version": SCENES_VERSION},
                                "images": images, "annotations": annotations}))
    return path
