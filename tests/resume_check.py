"""What the exact-resume tests share: the full training state of a run, and a SIGTERM at a chosen step."""

from __future__ import annotations

import contextlib

import torch
from unidit.training.checkpointing import PreemptionCheckpoint


def training_state(cli) -> dict[str, torch.Tensor]:
    """Every weight (denoiser and EMA) and every Adam slot of a finished LightningCLI run, copied."""
    state = {f"model.{k}": v.detach().clone() for k, v in cli.model.state_dict().items()}
    optimizer = cli.trainer.optimizers[0].state_dict()
    for pid, slots in optimizer["state"].items():
        for name, value in slots.items():
            state[f"adam.{pid}.{name}"] = torch.as_tensor(value).clone()
    return state


def differing(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that are not bit-identical (the key sets must match)."""
    assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))[:5]
    return [k for k in expected if not torch.equal(expected[k], got[k])]


@contextlib.contextmanager
def sigterm_at(monkeypatch, step: int):
    """Within the block, training receives SIGTERM (as Lightning's handler records it) after ``step`` steps."""
    original = PreemptionCheckpoint.on_train_batch_end

    def stop(self, trainer, *args):
        if trainer.global_step == step:
            trainer._signal_connector.received_sigterm = True
        return original(self, trainer, *args)

    monkeypatch.setattr(PreemptionCheckpoint, "on_train_batch_end", stop)
    try:
        yield
    finally:
        monkeypatch.setattr(PreemptionCheckpoint, "on_train_batch_end", original)
