"""Evaluation models (the tasks' faithfulness classifiers) trained once and cached on disk.

A cached model lives in ``<cache root>/<task>/<name>-<key>/`` as a
``save_pretrained`` folder (config.json + model.safetensors). It is written to
a temporary folder first and renamed into place, so a crash never leaves a
half-written model; a damaged folder is trained again, and a cache that cannot
be written only costs the training next time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

from safetensors import SafetensorError
from unidit.training.export import write_folder_atomically

Model = TypeVar("Model")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$UNIDIT_CACHE``, else ``~/.cache/unidit``."""
    return Path(cache_dir or os.environ.get("UNIDIT_CACHE") or Path.home() / ".cache" / "unidit")


def load_or_train(folder: Path, load: Callable[[Path], Model], train: Callable[[], Model]) -> Model:
    """``load(folder)`` when a readable model is cached there, else ``train()`` and save it there atomically."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        try:
            return load(folder)
        except (OSError, ValueError, RuntimeError, SafetensorError):
            pass  # damaged cache: train again
    model = train()
    try:
        write_folder_atomically(folder, model.save_pretrained)
    except OSError:
        pass  # caching is an optimisation
    return model
