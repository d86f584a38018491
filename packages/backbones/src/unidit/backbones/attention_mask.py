"""Boolean attention masks made safe for ``F.scaled_dot_product_attention``.

Masks are boolean, True = may attend. :class:`AttentionMask` is built once per
forward and shared by all blocks; query rows whose keys are all masked (an
empty context, an all-padding sample) attend to nothing and return zeros,
never NaN. No mask at all (``None``) lets SDPA pick its fused kernels
(FlashAttention on CUDA), which take none.
"""

from typing import NamedTuple

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


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask | None) -> Tensor:
    """SDPA over ``(B, H, L, Dh)`` tensors; rows without any key give zeros."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)  # (B, H, Lq, Dh)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.allowed)  # (B, H, Lq, Dh)
    return out.masked_fill(~mask.valid, 0.0)  # (B, H, Lq, Dh)
