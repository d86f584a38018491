"""Which frozen tokenizer a task's data module encodes its media with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl


def frozen_tokenizer(data: pl.LightningDataModule, folder: str | None, load: Callable[[str], Any],
                     attribute: str, missing: str) -> Any:
    """The tokenizer saved in ``folder`` (``load(folder)``) if one is named, else the trained model's.

    A data module encodes its clips into latents or codes with the same frozen tokenizer the
    task trains on: by default the one its LightningModule holds as ``attribute`` (e.g. ``vae``),
    so the two can never disagree; ``missing`` is the error when there is neither.
    """
    if folder is not None:
        return load(folder)
    model = data.trainer.lightning_module if data.trainer is not None else None
    found = getattr(model, attribute, None)
    if found is None:
        raise ValueError(missing)
    return found
