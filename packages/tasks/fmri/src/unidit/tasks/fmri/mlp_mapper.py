"""A learned mapper: per-subject linear layers into one shared MLP (MindEye2 / UMBRAE).

MindEye2 (Scotti et al. 2024, §2.1) maps each subject's flattened voxels with
its own linear layer into a shared latent space and trains the rest of the
network on every subject together; UMBRAE (Xia et al. 2024, §3) does the same
with subject-specific tokenizers, and reports brain captioning on NSD at CIDEr
61.1 cross-subject against 52.5 single-subject. :class:`SubjectMapper` is that
shape at small size: ``Linear(V_s, shared_dim)`` per subject, then
LayerNorm–GELU–Dropout–Linear blocks shared by all subjects. With one subject it
is the single-subject MLP mapper.

:class:`NeuralMapping` trains it on z-scored voxels and standardised targets
(mean-squared error, AdamW), holding out ``val_fraction`` of each subject's
training images: their predictions re-standardise the outputs as in
:mod:`unidit.tasks.fmri.mapping`, and the step with the lowest held-out loss is kept.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from unidit.tasks.fmri.mapping import Restandardiser, Standardiser, check_pair


@dataclass
class MLPConfig:
    """Sizes and training of the learned mapper.

    Attributes:
        shared_dim: width of the shared space every subject's linear layer maps into.
        hidden: width of the shared MLP's hidden layer.
        dropout: dropout before each shared linear layer.
        steps: optimiser steps (each sees one batch of every subject).
        batch_size: images per subject per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        val_fraction: training images held out per subject (early stopping and re-standardisation).
        eval_every: steps between held-out evaluations.
        seed: initialisation, batch and hold-out seed.
    """

    shared_dim: int = 256
    hidden: int = 512
    dropout: float = 0.3
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    val_fraction: float = 0.1
    eval_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shared_dim", "hidden", "steps", "batch_size", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"dropout in [0, 1) and val_fraction in (0, 0.5) expected, got {self.dropout}, "
                             f"{self.val_fraction}")


class SubjectMapper(nn.Module):
    """``(B, V_s)`` z-scored voxels of subject ``s`` -> ``(B, F)`` standardised features."""

    def __init__(self, voxels: dict[str, int], out_dim: int, config: MLPConfig) -> None:
        super().__init__()
        self.voxels = dict(voxels)
        self.subject_in = nn.ModuleDict({s: nn.Linear(v, config.shared_dim) for s, v in self.voxels.items()})
        self.shared = nn.Sequential(
            nn.LayerNorm(config.shared_dim), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.shared_dim, config.hidden), nn.LayerNorm(config.hidden), nn.GELU(),
            nn.Dropout(config.dropout), nn.Linear(config.hidden, out_dim),
        )

    def forward(self, x: Tensor, subject: str) -> Tensor:  # (B, V_s) -> (B, F)
        if subject not in self.subject_in:
            raise KeyError(f"subject {subject!r}: this mapper knows {sorted(self.subject_in)}")
        return self.shared(self.subject_in[subject](x))  # (B, D) -> (B, F)


class NeuralMapping:
    """Voxels of one or several subjects -> features, through one :class:`SubjectMapper`."""

    kind = "mlp"

    def __init__(self, config: MLPConfig | None = None) -> None:
        self.config = config or MLPConfig()
        self.network: SubjectMapper | None = None
        self.voxels: dict[str, Standardiser] = {}
        self.target: Standardiser | None = None
        self.restandardise: Restandardiser | None = None
        self.history: list[tuple[int, float]] = []  # (step, held-out loss)

    @property
    def subjects(self) -> list[str]:
        return list(self.voxels)

    def fit(self, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> "NeuralMapping":
        """``{subject: ((N_s, V_s) voxels, (N_s, F) features)}``: train the mapper on every subject together."""
        if not data:
            raise ValueError("mlp fit: no subjects given")
        c = self.config
        pairs = {s: check_pair(x, y, f"mlp fit, subject {s}") for s, (x, y) in data.items()}
        widths = {y.shape[1] for _, y in pairs.values()}
        if len(widths) != 1:
            raise ValueError(f"mlp fit: subjects have features of different widths {sorted(widths)}")
        rng = np.random.default_rng(c.seed)
        train, val = {}, {}
        for s, (x, y) in pairs.items():
            order = rng.permutation(len(x))
            held = max(1, int(round(c.val_fraction * len(x))))
            train[s], val[s] = (x[order[held:]], y[order[held:]]), (x[order[:held]], y[order[:held]])
        self.voxels = {s: Standardiser.fit(x) for s, (x, _) in train.items()}
        self.target = Standardiser.fit(np.concatenate([y for _, y in train.values()]))
        tensors = {s: (torch.from_numpy(self.voxels[s].transform(x)), torch.from_numpy(self.target.transform(y)))
                   for s, (x, y) in train.items()}  # z-scored (N, V_s), (N, F)
        held = {s: (torch.from_numpy(self.voxels[s].transform(x)), torch.from_numpy(self.target.transform(y)))
                for s, (x, y) in val.items()}
        torch.manual_seed(c.seed)
        self.network = SubjectMapper({s: x.shape[1] for s, (x, _) in tensors.items()}, widths.pop(), c)
        optimiser = torch.optim.AdamW(self.network.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, c.steps)
        generator = torch.Generator().manual_seed(c.seed)
        best, best_state, self.history = float("inf"), None, []
        for step in range(1, c.steps + 1):
            self.network.train()
            loss = torch.zeros(())
            for s, (x, y) in tensors.items():
                pick = torch.randint(len(x), (min(c.batch_size, len(x)),), generator=generator)  # (B,)
                loss = loss + nn.functional.mse_loss(self.network(x[pick], s), y[pick])
            optimiser.zero_grad()
            (loss / len(tensors)).backward()
            optimiser.step()
            schedule.step()
            if step % c.eval_every == 0 or step == c.steps:
                value = self._held_out_loss(held)
                self.history.append((step, value))
                if value < best:
                    best, best_state = value, copy.deepcopy(self.network.state_dict())
        self.network.load_state_dict(best_state)
        self.network.eval()
        predictions = np.concatenate([self._raw(s, x) for s, (x, _) in val.items()])  # (N_val, F)
        self.restandardise = Restandardiser(Standardiser.fit(predictions),
                                            Standardiser.fit(np.concatenate([y for _, y in train.values()])))
        return self

    @torch.no_grad()
    def _held_out_loss(self, held: dict[str, tuple[Tensor, Tensor]]) -> float:
        self.network.eval()
        return float(np.mean([nn.functional.mse_loss(self.network(x, s), y).item() for s, (x, y) in held.items()]))

    @torch.no_grad()
    def _raw(self, subject: str, voxels: np.ndarray) -> np.ndarray:
        """Predictions in feature units, before re-standardisation."""
        self.network.eval()
        z = torch.from_numpy(self.voxels[subject].transform(voxels))  # (N, V)
        return self.target.inverse(self.network(z, subject).numpy())  # (N, F)

    def predict(self, voxels: np.ndarray, subject: str) -> np.ndarray:
        """``(N, V_s)`` raw voxels of ``subject`` -> ``(N, F)`` predicted features."""
        if self.network is None:
            raise RuntimeError("NeuralMapping.predict before fit")
        if subject not in self.voxels:
            raise ValueError(f"subject {subject!r}: this mapping was fitted on {self.subjects}")
        voxels = np.asarray(voxels, dtype=np.float32)
        width = self.network.voxels[subject]
        if voxels.ndim != 2 or voxels.shape[1] != width:
            raise ValueError(f"voxels of {subject}: expected (N, {width}), got {voxels.shape}")
        return self.restandardise(self._raw(subject, voxels))

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"network.{k}": v.contiguous() for k, v in self.network.state_dict().items()}
        stats = {"target_mean": self.target.mean, "target_std": self.target.std,
                 "pred_mean": self.restandardise.source.mean, "pred_std": self.restandardise.source.std,
                 "train_mean": self.restandardise.target.mean, "train_std": self.restandardise.target.std}
        for s, z in self.voxels.items():
            stats[f"voxel_mean.{s}"], stats[f"voxel_std.{s}"] = z.mean, z.std
        state.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stats.items()})
        save_file(state, str(folder / "model.safetensors"))
        meta = {"kind": self.kind, "config": asdict(self.config), "voxels": self.network.voxels,
                "out_dim": int(self.target.mean.shape[0]), "history": self.history}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "NeuralMapping":
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        state = load_file(str(folder / "model.safetensors"))
        mapping = cls(MLPConfig(**meta["config"]))
        mapping.network = SubjectMapper(meta["voxels"], meta["out_dim"], mapping.config)
        mapping.network.load_state_dict({k[len("network."):]: v for k, v in state.items() if k.startswith("network.")})
        mapping.network.eval()
        arr = {k: v.numpy() for k, v in state.items() if not k.startswith("network.")}
        mapping.voxels = {s: Standardiser(arr[f"voxel_mean.{s}"], arr[f"voxel_std.{s}"]) for s in meta["voxels"]}
        mapping.target = Standardiser(arr["target_mean"], arr["target_std"])
        mapping.restandardise = Restandardiser(Standardiser(arr["pred_mean"], arr["pred_std"]),
                                               Standardiser(arr["train_mean"], arr["train_std"]))
        mapping.history = [tuple(h) for h in meta.get("history", [])]
        return mapping
