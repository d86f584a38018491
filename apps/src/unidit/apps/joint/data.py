"""The joint run's data: every task's own data module, mixed batch by batch.

Each task keeps its own data (embedded default or real format), its own
split, its own latent cache and its frozen tokenizer (the t2a / t2v data
modules encode every clip once with their VAE, here the joint model's
task's VAE); this module only draws, per step, how many samples of each task
the batch holds (:mod:`unidit.training.joint.mixing`) and collates them with
the task's own collate function.
"""

from __future__ import annotations

import lightning.pytorch as pl
from unidit.apps.joint.inner import build_inner
from unidit.apps.joint.task import parse_tasks
from unidit.tasks.motion.datamodule import MotionData
from unidit.tasks.shape3d.datamodule import Shape3DData
from unidit.tasks.t2a.datamodule import T2AData
from unidit.tasks.t2v.datamodule import T2VData
from unidit.training.joint.mixing import MixedSteps, mixing_probabilities, unwrap_one
from unidit.training.resumable_sampler import resumable_loader

DATA: dict[str, type[pl.LightningDataModule]] = {"shape3d": Shape3DData, "t2a": T2AData, "t2v": T2VData,
                                                 "motion": MotionData}



class JointData(pl.LightningDataModule):
    """Mixed batches of several tasks' data.

    Args:
        tasks: comma-separated task names, as the model's ``tasks``.
        task_data: each task's data-module options (its ``data:`` section of a single-task YAML).
        batch_size: samples per joint batch, all tasks together.
        steps_per_epoch: joint batches per epoch.
        weights: fixed mixing weights per task (any positive scale); wins over ``temperature``.
        temperature: temperature sampling by training-set size, ``p ∝ n^(1/T)``; None with no
            weights = uniform.
        seed: the draws of batch ``i`` of epoch ``e`` depend on ``(seed, i)`` and the loader's
            ``(seed, e)`` order only.
    """

    def __init__(self, tasks: str = "shape3d,t2a,t2v", task_data: dict[str, dict] | None = None,
                 batch_size: int = 32, steps_per_epoch: int = 100, weights: dict[str, float] | None = None,
                 temperature: float | None = None, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.names = parse_tasks(tasks)
        options = dict(task_data or {})
        stray = sorted(set(options) - set(DATA))
        if stray:
            raise ValueError(f"task_data: options for unknown task(s) {stray}; choose from {', '.join(DATA)}")
        self.modules = {n: build_inner(DATA[n], dict(options.get(n) or {})) for n in self.names}
        self.probabilities: dict[str, float] | None = None

    def _attach_tokenizers(self) -> None:
        """Encode with the joint model's own frozen tokenizers when a task's data names none."""
        model = self.trainer.lightning_module if self.trainer is not None else None
        subtasks = getattr(model, "subtasks", {})
        for name, module in self.modules.items():
            vqvae = getattr(subtasks.get(name), "vqvae", None)
            if vqvae is not None and hasattr(module, "attach_vqvae"):  # motion's codes
                module.attach_vqvae(vqvae)
            vae = getattr(subtasks.get(name), "vae", None)
            if vae is not None and hasattr(module, "attach_vae"):
                module.attach_vae(vae)
            elif vae is not None and hasattr(module, "use_vae") and module.hparams.encoder_vae is None:
                module.use_vae(vae)

    def setup(self, stage: str | None = None) -> None:
        self._attach_tokenizers()
        for module in self.modules.values():
            module.setup("fit")
        loaders = {n: m.train_dataloader() for n, m in self.modules.items()}
        sizes = {n: len(loader.dataset) for n, loader in loaders.items()}
        self.probabilities = mixing_probabilities(sizes, self.hparams.weights, self.hparams.temperature)
        self.train_steps = MixedSteps({n: l.dataset for n, l in loaders.items()},
                                      {n: l.collate_fn for n, l in loaders.items()}, self.probabilities,
                                      self.hparams.batch_size, self.hparams.steps_per_epoch, self.hparams.seed)
        val = {n: m.val_dataloader() for n, m in self.modules.items()}
        self.val_steps = MixedSteps({n: l.dataset for n, l in val.items()}, {n: l.collate_fn for n, l in val.items()},
                                    self.probabilities, self.hparams.batch_size, 8, self.hparams.seed + 1)

    def train_dataloader(self):
        return resumable_loader(self.train_steps, batch_size=1, seed=self.hparams.seed, collate_fn=unwrap_one)

    def val_dataloader(self):
        from torch.utils.data import DataLoader

        return DataLoader(self.val_steps, batch_size=1, shuffle=False, collate_fn=unwrap_one)
