"""Building a task's own module (its LightningModule or data module) inside the joint run's.

A joint run builds every task's module inside its own ``__init__``. Two things
of Lightning's would hand that inner module the joint run's hyper-parameters
instead of its own: ``save_hyperparameters`` collects the arguments of every
enclosing ``__init__`` frame, and under LightningCLI it takes the CLI's given
config (a context variable set while the outer module is instantiated). An
inner module must record only its own arguments: its export (``config.json``,
``task.json``) is loaded later by the task's own app.
"""

from __future__ import annotations

import contextlib

from lightning.pytorch.core.mixins import hparams_mixin


def build_inner(cls: type, options: dict):
    """``cls(**options)`` outside any ``__init__`` frame and outside LightningCLI's given hyper-parameters."""
    token = hparams_mixin._given_hyperparameters.set(None)
    try:
        return cls(**options)
    finally:
        with contextlib.suppress(ValueError):
            hparams_mixin._given_hyperparameters.reset(token)
