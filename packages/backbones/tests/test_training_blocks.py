"""Blocks compiled for training steps: same outputs and gradients, eager elsewhere, unchanged state dicts.

The compiled modules here use the ``aot_eager`` backend: it traces the blocks
with Dynamo and AOTAutograd exactly as Inductor's would (custom autograd
functions, per-token conditioning, masks), without Inductor's C++ build, which
takes a minute. Inductor's numerics are measured by the default runs whose
YAML turns compilation on (docs/architecture.md, "CPU speed").
"""

import pytest
import torch
from test_backbone_nets import ARCHS, grid_inputs, trained
from unidit.backbones.training_blocks import (
    compile_training_blocks,
    drop_training_blocks,
    eager_blocks,
    training_block,
)


def forward_and_grads(model: torch.nn.Module, inputs: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(**inputs)  # (B, L, D)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_training_blocks_match_eager_and_stay_out_of_the_state_dict(arch):
    model = trained(arch).train()
    inputs = grid_inputs()
    inputs["t"] = torch.rand(2, inputs["x"].shape[1], generator=torch.Generator().manual_seed(3))  # per-token times
    inputs["key_mask"][1, -3:] = False  # one padded sample
    keys = list(model.state_dict())
    eager_out, eager_grads = forward_and_grads(model, inputs)

    assert compile_training_blocks(model, backend="aot_eager") == len(model.blocks)
    block = model.blocks[0]
    assert training_block(model, block) is not block  # a training step takes the compiled block
    compiled_out, compiled_grads = forward_and_grads(model, inputs)
    # fp32 on both sides; traced blocks take the plain forms of RMSNorm / RoPE / SwiGLU instead of the
    # eager CPU kernels (norms.py, rope.py, mlp.py), so only the summation order differs
    torch.testing.assert_close(compiled_out, eager_out, atol=1e-4, rtol=1e-4)
    assert len(compiled_grads) == len(eager_grads)
    for compiled, eager in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
    assert list(model.state_dict()) == keys  # no `_orig_mod` entries: checkpoints are the eager model's

    with torch.no_grad():
        assert training_block(model, block) is block  # sampling stays eager
    assert training_block(model.eval(), block) is block  # so does validation
    model.train()
    with eager_blocks(model):
        assert training_block(model, block) is block  # eager for a while (benchmarks/cpu_step.py)
    assert training_block(model, block) is not block  # and compiled again after
    drop_training_blocks(model)
    assert training_block(model, block) is block
