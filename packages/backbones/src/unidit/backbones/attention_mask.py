"""Boolean attention masks made safe for ``F.scaled_dot_product_attention``.

Masks are boolean, True = may attend. :class:`AttentionMask` is built once per
forward and shared by all blocks; query rows whose keys are all masked (an
empty context, an all-padding sample) attend to nothing and return zeros,
never NaN. No mask at all (``None``) lets SDPA pick its fused kernels
(FlashAttention on CUDA), which take none.

One exception to SDPA: short bf16 / fp16 sequences trained on CPU. There the
fused CPU kernel's backward ran 2-4x slower than two batched matmuls and a
softmax (torch 2.11, 2-core Intel Xeon with AMX: 14.9 ms against 7.0 ms for
16 x 4 heads x 124 tokens), so :func:`masked_attention` writes the attention
out when both sides hold at most :data:`EXPLICIT_MAX_TOKENS` tokens.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


class AttentionMask(NamedTuple):
    """A boolean attention mask made safe for SDPA.

    ``allowed`` ``(B, 1, Lq|1, Lk)``: True where a query may see a key; rows
    with no key at all are opened fully (so softmax stays finite) and then
    zeroed through ``valid`` ``(B, 1, Lq|1, 1)``.
    """

    allowed: Tensor
    valid: Tensor

    @classmethod
    def from_bool(cls, mask: Tensor) -> "AttentionMask":
        """``mask`` ``(B, 1, Lq|1, Lk)`` bool, True = may attend."""
        valid = mask.any(dim=-1, keepdim=True)  # (B, 1, Lq|1, 1)
        return cls(allowed=mask | ~valid, valid=valid)


def key_padding_mask(key_mask: Tensor) -> AttentionMask | None:
    """``key_mask`` ``(B, Lk)`` (True = real key) -> mask for every query, or None when no key is padding.

    None lets SDPA pick its fused kernels (FlashAttention on CUDA), which take no mask; checking costs one
    host sync per forward, not per block.
    """
    if bool(key_mask.all()):
        return None
    return AttentionMask.from_bool(rearrange(key_mask, "b k -> b 1 1 k"))  # (B, 1, 1, Lk)


EXPLICIT_MAX_TOKENS = 192  # beyond this the fused kernel wins again (even at 256 tokens it ties)


def explicit_attention_pays(q: Tensor, k: Tensor) -> bool:
    """True for a bf16 / fp16 CPU forward with autograd on at most EXPLICIT_MAX_TOKENS queries and keys."""
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()
            and max(q.shape[-2], k.shape[-2]) <= EXPLICIT_MAX_TOKENS)


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None) -> Tensor:
    """Softmax attention written out (scores in the input dtype, softmax in float32) -> ``(B, H, Lq, Dh)``."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)  # (B, H, Lq, Lk)
    return torch.matmul(weights, v)  # (B, H, Lq, Dh)


def fused_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None) -> Tensor:
    """``F.scaled_dot_product_attention`` with ``allowed`` as its boolean mask -> ``(B, H, Lq, Dh)``."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask | None) -> Tensor:
    """SDPA over ``(B, H, L, Dh)`` tensors; rows without any key give zeros."""
    attend = explicit_attention if explicit_attention_pays(q, k) else fused_attention
    if mask is None:
        return attend(q, k, v, None)  # (B, H, Lq, Dh)
    out = attend(q, k, v, mask.allowed)  # (B, H, Lq, Dh)
    return out.masked_fill(~mask.valid, 0.0)  # (B, H, Lq, Dh)
