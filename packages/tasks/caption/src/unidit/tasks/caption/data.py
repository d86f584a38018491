"""Captioned images: the COCO captions format, the Karpathy split file, and the set both load into.

* COCO (``annotations/captions_train2017.json``): ``{"images": [{"id", "file_name", …}],
  "annotations": [{"image_id", "caption", …}]}`` with the pictures in one folder
  (``train2017/``). The embedded scenes are written in the same layout; their image
  entries carry an extra ``objects`` list (the true shapes), which COCO tools ignore.
* Karpathy (``dataset_coco.json``, Karpathy & Fei-Fei 2015): ``{"images": [{"filepath",
  "filename", "split", "cocoid", "sentences": [{"raw", "tokens"}]}]}``, splits
  ``train`` / ``restval`` / ``val`` / ``test`` (5,000 each for val and test); the
  usual training set is ``train`` + ``restval``.

Every caption passes :func:`unidit.training.captions.check_caption`; errors name the
file and what was expected.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from unidit.training.captions import check_caption


@dataclass
class CaptionSet:
    """Images (by path) with their captions; ``objects`` holds the true scene objects where known."""

    image_ids: list[int]
    image_paths: list[Path]
    captions: list[list[str]]
    objects: list[list[dict]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image(self, index: int, size: int | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB of one image (resized to ``size``×``size`` if given)."""
        path = self.image_paths[index]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image not found (listed for image id {self.image_ids[index]})")
        return read_image(path, size)

    def images(self, size: int | None = None) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 of every image (all of one size, or resized to ``size``)."""
        return np.stack([self.image(i, size) for i in range(len(self))])

    def references(self) -> dict[int, list[str]]:
        """``{image_id: captions}``, the input of :mod:`unidit.tasks.caption.metrics`."""
        return dict(zip(self.image_ids, self.captions))

    def all_captions(self) -> list[str]:
        return [text for texts in self.captions for text in texts]

    def subset(self, index) -> "CaptionSet":
        index = [int(i) for i in index]
        objects = [self.objects[i] for i in index] if self.objects else []
        return CaptionSet([self.image_ids[i] for i in index], [self.image_paths[i] for i in index],
                          [self.captions[i] for i in index], objects)


def read_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file (resized to ``size``×``size`` if given); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found; expected a PNG or JPEG file")
    try:
        with Image.open(path) as handle:
            picture = handle.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot decode the image ({error}); expected a PNG or JPEG file") from error
    if size is not None and picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(picture, dtype=np.uint8)


def _read_json(path: str | os.PathLike, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found; expected {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); expected {what}") from error
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: no 'images' list; expected {what}")
    return data


def read_coco_captions(path: str | os.PathLike, image_dir: str | os.PathLike) -> CaptionSet:
    """A COCO ``captions_*.json`` with its image folder; images without a caption are an error."""
    what = "a COCO captions file with 'images' (id, file_name) and 'annotations' (image_id, caption)"
    data = _read_json(path, what)
    if not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: no 'annotations' list; expected {what}")
    try:
        entries = {int(image["id"]): image for image in data["images"]}
        captions: dict[int, list[str]] = {image_id: [] for image_id in entries}
        for k, note in enumerate(data["annotations"]):
            image_id = int(note["image_id"])
            if image_id not in captions:
                raise ValueError(f"{path}: annotation {k} refers to image id {image_id}, which is not in 'images'")
            captions[image_id].append(check_caption(note.get("caption"), f"{path}: annotation {k} (image {image_id})"))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: entry without {error}; expected {what}") from error
    if not entries:
        raise ValueError(f"{path}: 'images' is empty; expected at least one image")
    empty = [image_id for image_id, texts in captions.items() if not texts]
    if empty:
        raise ValueError(f"{path}: {len(empty)} image(s) without captions (first id {empty[0]}); "
                         "expected at least one caption per image")
    ids = sorted(entries)
    folder = Path(image_dir)
    has_objects = all("objects" in entries[i] for i in ids)
    return CaptionSet(ids, [folder / entries[i]["file_name"] for i in ids], [captions[i] for i in ids],
                      [entries[i]["objects"] for i in ids] if has_objects else [])


def read_karpathy(path: str | os.PathLike, split: str, image_root: str | os.PathLike,
                  include_restval: bool = True) -> CaptionSet:
    """One split of a Karpathy ``dataset_coco.json``; images under ``image_root/<filepath>/<filename>``.

    ``split="train"`` also takes the ``restval`` images when ``include_restval`` (the usual 113k training set).
    """
    what = "a Karpathy split file with 'images' (filepath, filename, split, sentences)"
    data = _read_json(path, what)
    wanted = {split, "restval"} if split == "train" and include_restval else {split}
    root, ids, paths, captions = Path(image_root), [], [], []
    found = set()
    try:
        for k, image in enumerate(data["images"]):
            found.add(image["split"])
            if image["split"] not in wanted:
                continue
            sentences = image["sentences"]
            where = f"{path}: image {k} ({image['filename']})"
            if not sentences:
                raise ValueError(f"{where}: empty 'sentences'; expected at least one caption")
            texts = [check_caption(s.get("raw") or " ".join(s.get("tokens", [])), where) for s in sentences]
            ids.append(int(image.get("cocoid", image.get("imgid", k))))
            paths.append(root / image.get("filepath", "") / image["filename"])
            captions.append(texts)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: image entry without {error}; expected {what}") from error
    if not ids:
        raise ValueError(f"{path}: no image in split {split!r}; the file has splits {sorted(found)}")
    return CaptionSet(ids, paths, captions)
