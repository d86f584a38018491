"""The brain decoder: every subject's mappers from voxels to the captioner's image features.

Three kinds, chosen by :class:`MappingOptions` (Brain Captioning's ridge, and the
learned mappers of MindEye2 / UMBRAE, see :mod:`unidit.tasks.fmri.mapping` and
:mod:`unidit.tasks.fmri.mlp_mapper`):

* ``ridge``: one :class:`~unidit.tasks.fmri.mapping.RidgeMapping` per subject;
* ``mlp``: one single-subject :class:`~unidit.tasks.fmri.mlp_mapper.NeuralMapping` per subject;
* ``cross_subject``: one NeuralMapping trained on every subject at once
  (per-subject input layers, shared MLP), against ``mlp`` as its single-subject baseline.

Saved under one folder: ``<kind>/<subject>/`` (ridge, mlp) or ``cross_subject/``,
each a ``config.json`` + ``model.safetensors``, with ``decoder.json`` listing them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from unidit.tasks.fmri.mapping import RidgeConfig, RidgeMapping
from unidit.tasks.fmri.mlp_mapper import MLPConfig, NeuralMapping
from unidit.tasks.fmri.responses import SubjectResponses

KINDS = ("ridge", "mlp", "cross_subject")
DECODER_FILE = "decoder.json"


@dataclass
class MappingOptions:
    """Which mappers ``unidit fit fmri`` trains.

    Attributes:
        kinds: mappers to fit (ridge, mlp, cross_subject); the first one is the main result and the floor's mapper.
        ridge: ridge options (the alpha grid, the folds of the re-standardisation).
        mlp: sizes and training of the mlp and cross_subject mappers.
    """

    kinds: list[Literal["ridge", "mlp", "cross_subject"]] = field(default_factory=lambda: ["ridge", "mlp",
                                                                                            "cross_subject"])
    ridge: RidgeConfig = field(default_factory=RidgeConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)

    def __post_init__(self) -> None:
        if isinstance(self.ridge, dict):
            self.ridge = RidgeConfig(**self.ridge)
        if isinstance(self.mlp, dict):
            self.mlp = MLPConfig(**self.mlp)
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or unknown or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds: expected distinct names among {KINDS}, got {self.kinds}")


class BrainDecoder:
    """Fitted mappers by kind and subject; ``predict(kind, subject, voxels)`` -> ``(N, S·Dc)`` features."""

    def __init__(self, options: MappingOptions | None = None) -> None:
        self.options = options or MappingOptions()
        self.ridge: dict[str, RidgeMapping] = {}
        self.mlp: dict[str, NeuralMapping] = {}
        self.cross: NeuralMapping | None = None
        self.seconds: dict[str, float] = {}

    @property
    def kinds(self) -> list[str]:
        return list(self.options.kinds)

    @property
    def subjects(self) -> list[str]:
        return list(self.ridge or self.mlp or (self.cross.subjects if self.cross else []))

    def fit(self, train: dict[str, SubjectResponses], features: Callable[[np.ndarray], np.ndarray]) -> "BrainDecoder":
        """Fit every kind on the subjects' training responses; ``features(image_ids)`` -> ``(N, S·Dc)`` targets."""
        pairs = {s: (r.voxels, features(r.image_ids)) for s, r in train.items()}
        for kind in self.kinds:
            begin = time.perf_counter()
            if kind == "ridge":
                self.ridge = {s: RidgeMapping(self.options.ridge).fit(x, y) for s, (x, y) in pairs.items()}
            elif kind == "mlp":
                self.mlp = {s: NeuralMapping(self.options.mlp).fit({s: pair}) for s, pair in pairs.items()}
            else:
                self.cross = NeuralMapping(self.options.mlp).fit(pairs)
            self.seconds[kind] = round(time.perf_counter() - begin, 2)
        return self

    def predict(self, kind: str, subject: str, voxels: np.ndarray) -> np.ndarray:
        if kind not in self.kinds:
            raise ValueError(f"mapper {kind!r}: this decoder has {self.kinds}")
        if subject not in self.subjects:
            raise ValueError(f"subject {subject!r}: this decoder was fitted on {self.subjects}")
        if kind == "ridge":
            return self.ridge[subject].predict(voxels)
        if kind == "mlp":
            return self.mlp[subject].predict(voxels, subject)
        return self.cross.predict(voxels, subject)

    def alphas(self) -> dict[str, float]:
        return {s: m.alpha for s, m in self.ridge.items()}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        for s, m in self.ridge.items():
            m.save(folder / "ridge" / s)
        for s, m in self.mlp.items():
            m.save(folder / "mlp" / s)
        if self.cross is not None:
            self.cross.save(folder / "cross_subject")
        options = {"kinds": self.kinds}
        (folder / DECODER_FILE).write_text(json.dumps({"options": options, "subjects": self.subjects,
                                                       "seconds": self.seconds}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "BrainDecoder":
        folder = Path(folder)
        meta_path = folder / DECODER_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not found; expected a brain decoder saved by unidit fit fmri")
        meta = json.loads(meta_path.read_text())
        decoder = cls(MappingOptions(kinds=meta["options"]["kinds"]))
        for kind in decoder.kinds:
            if kind == "ridge":
                decoder.ridge = {s: RidgeMapping.load(folder / "ridge" / s) for s in meta["subjects"]}
            elif kind == "mlp":
                decoder.mlp = {s: NeuralMapping.load(folder / "mlp" / s) for s in meta["subjects"]}
            else:
                decoder.cross = NeuralMapping.load(folder / "cross_subject")
        decoder.seconds = meta.get("seconds", {})
        return decoder
