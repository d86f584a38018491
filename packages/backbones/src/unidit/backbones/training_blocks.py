"""Transformer blocks compiled for training steps only (``torch.compile``, Inductor).

On a 2-core CPU a default's training step is bound by many small operators
(casts between fp32 and bf16, elementwise products, norms) as much as by its
matrix products; Inductor fuses them. Compiling each block (PyTorch's
"regional compilation") keeps the compiled graphs small, shares them across
the blocks' repeated structure, and leaves everything else eager.

Only steps with autograd on and the backbone in train mode take the compiled
blocks. Sampling, validation and export keep the eager blocks, so they do not
trigger a second compilation for inference graphs, and the EMA copy (made
before compilation) is never compiled. The compiled modules share the blocks'
parameters and are kept outside the module tree (a plain dict), so state
dicts and checkpoints are those of the eager backbone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_ATTRIBUTE = "_compiled_training_blocks"  # id(block) -> compiled module; not registered as a submodule


def compile_training_blocks(backbone: nn.Module, **compile_options) -> int:
    """Compile every block of ``backbone.blocks`` for training steps; returns how many were compiled."""
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(f"{type(backbone).__name__} has no `blocks` ModuleList to compile")
    compiled = {id(block): torch.compile(block, **compile_options) for block in blocks}
    backbone.__dict__[_ATTRIBUTE] = compiled  # bypasses nn.Module.__setattr__: no `_orig_mod` keys
    return len(compiled)


def drop_training_blocks(backbone: nn.Module) -> None:
    """Back to the eager blocks for every call."""
    backbone.__dict__.pop(_ATTRIBUTE, None)


@contextmanager
def eager_blocks(backbone: nn.Module) -> Iterator[None]:
    """Eager blocks inside the ``with``; the compiled ones (if any) come back after it."""
    compiled = backbone.__dict__.pop(_ATTRIBUTE, None)
    try:
        yield
    finally:
        if compiled is not None:
            backbone.__dict__[_ATTRIBUTE] = compiled


def training_block(backbone: nn.Module, block: nn.Module) -> nn.Module:
    """The compiled form of ``block`` for a training step, else ``block`` itself."""
    compiled = backbone.__dict__.get(_ATTRIBUTE)
    if compiled is None or not (backbone.training and torch.is_grad_enabled()):
        return block
    return compiled.get(id(block), block)
