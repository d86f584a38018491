"""Capture and restore every random-number stream a training step draws from.

Global streams (torch CPU and CUDA, NumPy, Python ``random``) and the private
generators a task keeps as attributes (``random.Random`` / ``torch.Generator``,
e.g. caption dropout and completion masks) are stored as plain Python values
and tensors, so checkpoints still load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_global() -> dict[str, Any]:
    """The state of the global torch / NumPy / Python generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": _plain_python_state(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_global`."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture_attributes(owner: object) -> dict[str, Any]:
    """The states of ``owner``'s ``random.Random`` and ``torch.Generator`` attributes, by name."""
    out: dict[str, Any] = {}
    for name, value in vars(owner).items():
        if isinstance(value, random.Random):
            out[name] = {"python": _plain_python_state(value.getstate())}
        elif isinstance(value, torch.Generator):
            out[name] = {"torch": value.get_state()}
    return out


def restore_attributes(owner: object, states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_attributes`; names missing on ``owner`` raise a clear error."""
    for name, state in states.items():
        value = getattr(owner, name, None)
        if isinstance(value, random.Random) and "python" in state:
            value.setstate(_python_state(state["python"]))
        elif isinstance(value, torch.Generator) and "torch" in state:
            value.set_state(state["torch"])
        else:
            raise ValueError(f"checkpoint holds RNG state {name!r} but {type(owner).__name__} has no such generator")


def _plain_python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [int(version), list(internal), gauss]


def _python_state(state: list) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(v) for v in internal), gauss)
