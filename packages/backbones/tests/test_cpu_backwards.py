"""The CPU fast paths compute bit-for-bit what the plain PyTorch expressions compute, values and gradients.

Trained results reported in the README were produced before these paths existed; bit-identity keeps
them reproducible.
"""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from unidit.backbones.heads import split_heads
from unidit.backbones.mlp import swiglu_gate
from unidit.backbones.modulation import gated_residual, modulate

DTYPES = [torch.float32, torch.bfloat16]


def values_and_grads(fn, *inputs, seed: int = 3):
    """``fn(*inputs)`` and the gradients of a fixed random projection of its outputs."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    outputs = fn(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=g).to(o.dtype) for o in outputs]
    sum(((o * w).float().sum() for o, w in zip(outputs, weights, strict=True))).backward()
    return [o.detach() for o in outputs], [x.grad for x in leaves]


def assert_bit_identical(fast, plain, *inputs):
    fast_values, fast_grads = values_and_grads(fast, *inputs)
    plain_values, plain_grads = values_and_grads(plain, *inputs)
    for a, b in zip(fast_values + fast_grads, plain_values + plain_grads, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parts", [2, 3])
def test_split_heads_matches_rearrange_and_unbind(dtype, parts):
    fused = torch.randn(2, 7, parts * 4 * 8).to(dtype)  # (B, L, parts·H·Dh)

    def plain(x):
        return rearrange(x, "b l (k h d) -> k b h l d", k=parts, h=4).unbind(0)

    assert_bit_identical(lambda x: split_heads(x, parts, 4), plain, fused)


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu_gate_matches_chunk_silu_mul(dtype):
    fused = torch.randn(2, 7, 2 * 24).to(dtype)  # (B, L, 2·hidden)

    def plain(x):
        gate, value = x.chunk(2, dim=-1)
        return F.silu(gate) * value

    assert_bit_identical(swiglu_gate, plain, fused)


@pytest.mark.parametrize("per_token", [False, True])
def test_modulate_and_gated_residual_match_the_plain_expressions(per_token):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 16, generator=g)  # fp32 residual stream
    length = 7 if per_token else 1
    # bf16 terms as under autocast, next to the fp32 stream
    shift, scale, gate = (torch.randn(2, length, 16, generator=g).bfloat16() for _ in range(3))
    update = torch.randn(2, 7, 16, generator=g).bfloat16()
    assert_bit_identical(modulate, lambda x, a, b: x * (1 + b) + a, x, shift, scale)
    assert_bit_identical(gated_residual, lambda x, a, b: x + a * b, x, gate, update)
    assert_bit_identical(gated_residual, lambda x, a, b: x + a * b, x, gate.float(), update.float())
