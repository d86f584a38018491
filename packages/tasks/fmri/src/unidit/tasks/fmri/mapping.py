"""Ridge regression from fMRI voxels to the captioner's image features (Brain-Diffuser / Brain Captioning).

Brain-Diffuser (Ozcelik & VanRullen 2023, §2.3) and the brain-captioning
pipelines after it map trial-averaged NSD betas linearly onto the features a
pretrained generator is conditioned on:

1. every voxel is z-scored with the *training* mean and standard deviation
   (:class:`Standardiser`);
2. one ridge regression per subject predicts every feature at once; the
   penalty ``alpha`` is chosen by efficient leave-one-out cross-validation
   (generalised cross-validation, scikit-learn's :class:`~sklearn.linear_model.RidgeCV`)
   over :data:`ALPHAS` (1 to 10^6 in half-decades; Brain-Diffuser's 5·10^4–10^5
   on the 15,724 voxels of NSD subj01 lie inside it);
3. ridge predictions shrink towards the mean, so each predicted feature is
   re-standardised (:class:`Restandardiser`): centred and scaled by the mean / std
   of *held-out* predictions (``folds``-fold out-of-fold predictions on the
   training set at the chosen alpha) and given the target features' training mean
   / std. Brain-Diffuser takes the first statistics from the batch of test
   predictions itself; held-out training predictions give the same correction
   without looking at the test set, and also work for a single trial.

Saved as ``config.json`` + ``model.safetensors`` (coefficients, intercepts and
statistics), loaded back exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

ALPHAS = tuple(float(a) for a in np.logspace(0, 6, 13))  # 1, 3.16, 10, …, 1e6
EPS = 1e-6


@dataclass
class Standardiser:
    """Per-column mean and std of a training matrix; ``transform`` z-scores, ``inverse`` undoes it."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @classmethod
    def fit(cls, values: np.ndarray) -> "Standardiser":
        values = np.asarray(values, dtype=np.float64)
        std = values.std(axis=0)
        return cls(values.mean(axis=0).astype(np.float32), np.where(std > EPS, std, 1.0).astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:  # (N, D) -> (N, D)
        return ((np.asarray(values, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:  # (N, D) -> (N, D)
        return (np.asarray(values, dtype=np.float32) * self.std + self.mean).astype(np.float32)


@dataclass
class Restandardiser:
    """Maps predictions with held-out statistics ``source`` onto the targets' training statistics ``target``."""

    source: Standardiser
    target: Standardiser

    def __call__(self, predictions: np.ndarray) -> np.ndarray:  # (N, F) -> (N, F)
        return self.target.inverse(self.source.transform(predictions))


def check_pair(voxels: np.ndarray, features: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, V)`` voxels and ``(N, F)`` features of the same N trials, finite, as float32."""
    voxels, features = np.asarray(voxels, dtype=np.float32), np.asarray(features, dtype=np.float32)
    if voxels.ndim != 2 or features.ndim != 2 or len(voxels) != len(features):
        raise ValueError(f"{what}: expected (N, voxels) and (N, features) arrays of the same N, got "
                         f"{voxels.shape} and {features.shape}")
    if len(voxels) < 3:
        raise ValueError(f"{what}: {len(voxels)} training images; expected at least 3 to cross-validate")
    if not (np.isfinite(voxels).all() and np.isfinite(features).all()):
        raise ValueError(f"{what}: voxels or features contain NaN or infinite values")
    return voxels, features


@dataclass
class RidgeConfig:
    """How :class:`RidgeMapping` fits.

    Attributes:
        alphas: the penalties tried by leave-one-out (GCV) cross-validation.
        folds: folds of the out-of-fold predictions whose statistics re-standardise the outputs
            (0 = no re-standardisation).
    """

    alphas: list[float] = field(default_factory=lambda: list(ALPHAS))
    folds: int = 5

    def __post_init__(self) -> None:
        if not self.alphas or any(not a > 0 for a in self.alphas):
            raise ValueError(f"alphas: expected one or more positive penalties, got {self.alphas}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds: expected 0 (off) or at least 2, got {self.folds}")


class RidgeMapping:
    """One subject's voxels ``(N, V)`` -> features ``(N, F)``: z-scored voxels, RidgeCV, re-standardised output."""

    def __init__(self, config: RidgeConfig | None = None) -> None:
        self.config = config or RidgeConfig()
        self.voxels: Standardiser | None = None
        self.restandardise: Restandardiser | None = None
        self.coef: np.ndarray | None = None  # (F, V)
        self.intercept: np.ndarray | None = None  # (F,)
        self.alpha: float | None = None

    @property
    def num_voxels(self) -> int:
        return int(self.coef.shape[1])

    def fit(self, voxels: np.ndarray, features: np.ndarray) -> "RidgeMapping":
        voxels, features = check_pair(voxels, features, "ridge fit")
        self.voxels = Standardiser.fit(voxels)
        x = self.voxels.transform(voxels)  # (N, V)
        search = RidgeCV(alphas=self.config.alphas, fit_intercept=True).fit(x, features)
        self.alpha = float(search.alpha_)
        self.coef = np.asarray(search.coef_, dtype=np.float32).reshape(features.shape[1], -1)  # (F, V)
        self.intercept = np.asarray(search.intercept_, dtype=np.float32).reshape(-1)  # (F,)
        self.restandardise = None
        folds = min(self.config.folds, len(x))
        if folds >= 2:
            held_out = cross_val_predict(Ridge(alpha=self.alpha), x, features,
                                         cv=KFold(folds, shuffle=True, random_state=0))  # (N, F)
            self.restandardise = Restandardiser(Standardiser.fit(held_out), Standardiser.fit(features))
        return self

    def predict(self, voxels: np.ndarray) -> np.ndarray:
        """``(N, V)`` raw voxels -> ``(N, F)`` predicted features."""
        if self.coef is None:
            raise RuntimeError("RidgeMapping.predict before fit")
        voxels = np.asarray(voxels, dtype=np.float32)
        if voxels.ndim != 2 or voxels.shape[1] != self.num_voxels:
            raise ValueError(f"voxels: expected (N, {self.num_voxels}) (the voxels this mapping was fitted on), "
                             f"got {voxels.shape}")
        out = self.voxels.transform(voxels) @ self.coef.T + self.intercept  # (N, F)
        return self.restandardise(out) if self.restandardise is not None else out.astype(np.float32)

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        state = {"coef": self.coef, "intercept": self.intercept, "voxel_mean": self.voxels.mean,
                 "voxel_std": self.voxels.std}
        if self.restandardise is not None:
            r = self.restandardise
            state.update(pred_mean=r.source.mean, pred_std=r.source.std, target_mean=r.target.mean,
                         target_std=r.target.std)
        return state

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.state().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"kind": "ridge", "alpha": self.alpha,
                                                        "config": asdict(self.config)}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "RidgeMapping":
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        state = {k: v.numpy() for k, v in load_file(str(folder / "model.safetensors")).items()}
        mapping = cls(RidgeConfig(**meta["config"]))
        mapping.alpha, mapping.coef, mapping.intercept = meta["alpha"], state["coef"], state["intercept"]
        mapping.voxels = Standardiser(state["voxel_mean"], state["voxel_std"])
        if "pred_mean" in state:
            mapping.restandardise = Restandardiser(Standardiser(state["pred_mean"], state["pred_std"]),
                                                   Standardiser(state["target_mean"], state["target_std"]))
        return mapping
