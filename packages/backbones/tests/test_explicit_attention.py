"""Short bf16 sequences trained on CPU skip the fused SDPA kernel: same attention, same zeros for empty rows."""

import torch
import torch.nn.functional as F
from unidit.backbones.attention_mask import (
    EXPLICIT_MAX_TOKENS,
    AttentionMask,
    explicit_attention_pays,
    masked_attention,
)


def qkv(batch: int, queries: int, keys: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(batch, 2, queries, 16), (batch, 2, keys, 16), (batch, 2, keys, 16)]  # (B, H, L, Dh)
    return [torch.randn(shape, generator=g).to(dtype).requires_grad_(True) for shape in shapes]


def test_explicit_path_is_taken_only_for_short_low_precision_cpu_training():
    q, k, _ = qkv(1, 8, EXPLICIT_MAX_TOKENS, torch.bfloat16)
    assert explicit_attention_pays(q, k)
    assert not explicit_attention_pays(q.float(), k.float())  # fp32 keeps the fused kernel
    with torch.no_grad():
        assert not explicit_attention_pays(q, k)  # sampling keeps the fused kernel
    long_k = torch.zeros(1, 2, EXPLICIT_MAX_TOKENS + 1, 16, dtype=torch.bfloat16)
    assert not explicit_attention_pays(q, long_k)


def test_explicit_bf16_attention_matches_fp32_sdpa_values_and_grads():
    """Padding keys, a sample whose keys are all padding (zeros out), values and grads within bf16 rounding."""
    key_mask = torch.ones(3, 40, dtype=torch.bool)
    key_mask[0, 30:] = False
    key_mask[2] = False  # no key at all: its queries must give exact zeros
    mask = AttentionMask.from_bool(key_mask[:, None, None, :])  # (B, 1, 1, Lk)
    q, k, v = qkv(3, 24, 40, torch.bfloat16)
    weights = torch.randn(3, 2, 24, 16)

    out = masked_attention(q, k, v, mask)  # explicit: bf16, CPU, autograd on
    (out.float() * weights).sum().backward()

    ref_inputs = [x.detach().float().requires_grad_(True) for x in (q, k, v)]
    ref = F.scaled_dot_product_attention(*ref_inputs, attn_mask=mask.allowed).masked_fill(~mask.valid, 0.0)
    (ref * weights).sum().backward()

    assert out.dtype == torch.bfloat16
    assert torch.equal(out[2], torch.zeros_like(out[2]))
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    for x, r in zip((q, k, v), ref_inputs, strict=True):
        torch.testing.assert_close(x.grad.float(), r.grad, atol=5e-2, rtol=5e-2)
    assert torch.equal(k.grad[2], torch.zeros_like(k.grad[2]))  # no gradient through an empty sample
