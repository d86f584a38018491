"""Attention layers of the backbones, all on ``F.scaled_dot_product_attention``.

* :class:`SelfAttention` -- multi-head self-attention with QK-norm (Dehghani
  et al., "Scaling Vision Transformers to 22 Billion Parameters", 2023, §2.1;
  also SD3, Esser et al. 2024, §5.3) and axial RoPE (Lumina-Next §3).
* :class:`CrossAttention` -- queries from the latent tokens, keys/values from
  the text context, with the zero-initialised per-head ``tanh`` gate of
  Lumina-T2X's Flag-DiT (Gao et al. 2024, §2.3): a fresh layer outputs exact
  zeros, so a fresh model ignores the text.
* :class:`JointAttention` -- the MM-DiT attention of SD3 (Esser et al. 2024,
  §4, Fig. 2): each stream has its own projections, the two sequences are
  concatenated and attended in one call; RoPE rotates the latent stream only.

Masks (:mod:`unidit.backbones.attention_mask`) are boolean, True = may attend,
built once per forward and shared by all blocks. In a varlen-packed row (several
samples end to end, :mod:`unidit.backbones.varlen`) the blocks get a
:class:`~unidit.backbones.varlen.VarlenRow` in place of the mask, and attention
stays inside each sample. Window attention (DiT-3D, Mo et al. 2023, §3.2 "3D window
attention") is an extra mask derived from the token positions.
"""

import torch
from einops import rearrange
from torch import Tensor, nn
from unidit.backbones.attention_mask import AttentionMask, key_padding_mask, masked_attention
from unidit.backbones.heads import split_heads
from unidit.backbones.norms import RMSNorm
from unidit.backbones.rope import apply_rope
from unidit.backbones.varlen import VarlenRow

__all__ = [
    "AttentionMask",
    "CrossAttention",
    "JointAttention",
    "SelfAttention",
    "drop_padding_columns",
    "key_padding_mask",
    "masked_attention",
    "same_window",
    "window_ids",
]


def drop_padding_columns(context: Tensor, context_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the context positions that are padding in every row (dynamic padding).

    Text encoders pad every caption to one length; a position no row uses changes no latent output, so
    removing it is exact and leaves a shorter key sequence, often with no mask left at all.
    ``context`` ``(B, S, D)``, ``context_mask`` ``(B, S)`` bool -> ``(B, S', D)``, ``(B, S')``.
    """
    used = context_mask.any(dim=0)  # (S,)
    n_used = int(used.sum())
    if n_used == used.numel():
        return context, context_mask
    if n_used == 0:  # every row empty: keep one fully masked position so the masks stay well-formed
        return context[:, :1], context_mask[:, :1]
    return context[:, used], context_mask[:, used]  # (B, S', D), (B, S')


def window_ids(positions: Tensor, window_size: int) -> Tensor:
    """One integer per token naming its cubic window: ``(B, L, 3)`` -> ``(B, L)``.

    Window ``w = position // window_size`` per axis, flattened with per-axis
    extents so that distinct windows get distinct ids.
    """
    win = torch.div(positions, window_size, rounding_mode="floor")  # (B, L, 3)
    win = win - win.amin(dim=(0, 1), keepdim=True)  # (B, L, 3) non-negative
    extent = win.amax(dim=(0, 1)) + 1  # (3,)
    return (win[..., 0] * extent[1] + win[..., 1]) * extent[2] + win[..., 2]  # (B, L)


def same_window(positions: Tensor, window_size: int) -> Tensor:
    """``(B, L, 3)`` positions -> ``(B, L, L)`` bool, True where two tokens share a window."""
    ids = window_ids(positions, window_size)  # (B, L)
    return ids[:, :, None] == ids[:, None, :]  # (B, L, L)


def _qk_norm(enabled: bool, head_dim: int, eps: float) -> nn.Module:
    return RMSNorm(head_dim, eps) if enabled else nn.Identity()


class SelfAttention(nn.Module):
    """Multi-head self-attention with QK-RMSNorm and axial RoPE.

    Args:
        dim: model width.
        num_heads: attention heads (``dim // num_heads`` channels each).
        qk_norm: RMS-normalise queries and keys per head.
        eps: RMSNorm epsilon.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.k_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, rope: Tensor, mask: AttentionMask | VarlenRow | None) -> Tensor:
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)  # (B, H, L, Dh) each
        q = apply_rope(self.q_norm(q), rope)  # (B, H, L, Dh)
        k = apply_rope(self.k_norm(k), rope)  # (B, H, L, Dh)
        if isinstance(mask, VarlenRow):
            out = mask.self_attention(q, k, v)  # (1, H, T, Dh)
        else:
            out = masked_attention(q, k, v, mask)  # (B, H, L, Dh)
        return self.out(rearrange(out, "b h l d -> b l (h d)"))  # (B, L, D)


class CrossAttention(nn.Module):
    """Cross-attention from latent tokens to text context with a zero-init tanh gate.

    The output of head ``h`` is multiplied by ``tanh(gate[h])`` before the
    bias-free output projection; ``gate`` starts at zero (Lumina-T2X §2.3), so
    the layer returns exact zeros until the gate has been trained.

    Args:
        dim: model width (queries and output).
        num_heads: attention heads.
        context_dim: width of the context tokens (keys/values input).
        qk_norm: RMS-normalise queries and keys per head.
        eps: RMSNorm epsilon.
        gate_init: initial gate value (0 = Lumina's zero init; see ``BackboneConfig.cross_gate_init``).
    """

    def __init__(
        self, dim: int, num_heads: int, context_dim: int | None = None, qk_norm: bool = True, eps: float = 1e-6,
        gate_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.q_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.k_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.gate = nn.Parameter(torch.full((num_heads,), float(gate_init)))
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, context: Tensor, mask: AttentionMask | VarlenRow | None) -> Tensor:
        """``x`` ``(B, L, D)``, ``context`` ``(B, S, Dc)``; in a varlen row ``(1, T, D)`` and ``(N, S, Dc)``."""
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=self.num_heads)  # (B, H, L, Dh)
        k, v = split_heads(self.kv(context), 2, self.num_heads)  # (B, H, S, Dh) each
        if isinstance(mask, VarlenRow):
            out = mask.cross_attention(self.q_norm(q), self.k_norm(k), v)  # (1, H, T, Dh)
        else:
            out = masked_attention(self.q_norm(q), self.k_norm(k), v, mask)  # (B, H, L, Dh)
        gate = rearrange(self.gate.tanh(), "h -> 1 h 1 1").to(out.dtype)  # (1, H, 1, 1)
        return self.out(rearrange(out * gate, "b h l d -> b l (h d)"))  # (B, L, D)


class JointAttention(nn.Module):
    """MM-DiT joint attention over a latent stream and a context stream (SD3 §4).

    Both streams have their own QKV (and QK-norm) weights; their sequences are
    concatenated as ``[latent, context]`` for a single SDPA call, so the mask
    given to ``forward`` must follow that order. RoPE rotates the latent
    tokens only (equivalently, context tokens sit at position 0). With
    ``context_pre_only`` (the last SD3 block) the context stream only supplies
    keys and values: its queries, query norm and output projection are gone.

    Args:
        dim: model width of both streams.
        num_heads: attention heads.
        qk_norm: RMS-normalise queries and keys per head and stream.
        eps: RMSNorm epsilon.
        context_pre_only: drop the context stream's output.
    """

    def __init__(
        self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6, context_pre_only: bool = False
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.context_pre_only = context_pre_only
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.k_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.out = nn.Linear(dim, dim, bias=False)
        self.context_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.context_q_norm = None if context_pre_only else _qk_norm(qk_norm, dim // num_heads, eps)
        self.context_k_norm = _qk_norm(qk_norm, dim // num_heads, eps)
        self.context_out = None if context_pre_only else nn.Linear(dim, dim, bias=False)

    def forward(
        self, x: Tensor, context: Tensor | None, rope: Tensor, mask: AttentionMask | VarlenRow | None
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` ``(B, L, D)``, ``context`` ``(B, S, D)`` or None -> outputs of both streams.

        In a varlen row ``x`` is ``(1, T, D)`` and ``context`` ``(N, S, D)``, one caption per sample.
        """
        length = x.shape[1]
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)  # (B, H, L, Dh) each
        q = apply_rope(self.q_norm(q), rope)  # (B, H, L, Dh)
        k = apply_rope(self.k_norm(k), rope)  # (B, H, L, Dh)
        qc = kc = vc = None
        if context is not None:
            qc, kc, vc = split_heads(self.context_qkv(context), 3, self.num_heads)  # (B, H, S, Dh) each
            kc = self.context_k_norm(kc)  # (B, H, S, Dh)
            qc = None if self.context_out is None else self.context_q_norm(qc)  # pre-only: context asks nothing
        if isinstance(mask, VarlenRow):
            if context is None:
                out, context_out = mask.self_attention(q, k, v), None  # (1, H, T, Dh)
            else:
                out, context_out = mask.joint_attention(q, k, v, qc, kc, vc)  # (1, H, T, Dh), (N, H, S, Dh) | None
            x_out = self.out(rearrange(out, "b h l d -> b l (h d)"))  # (1, T, D)
            if context_out is None:
                return x_out, None
            return x_out, self.context_out(rearrange(context_out, "b h s d -> b s (h d)"))  # (N, S, D)
        if context is not None:
            if qc is None:  # context queries would be thrown away: keep latent rows only
                if mask is not None and mask.allowed.shape[2] > 1:
                    mask = AttentionMask(mask.allowed[:, :, :length], mask.valid[:, :, :length])
            else:
                q = torch.cat([q, qc], dim=2)  # (B, H, L+S, Dh)
            k = torch.cat([k, kc], dim=2)  # (B, H, L+S, Dh)
            v = torch.cat([v, vc], dim=2)  # (B, H, L+S, Dh)
        out = rearrange(masked_attention(q, k, v, mask), "b h n d -> b n (h d)")  # (B, L+S, D)
        x_out = self.out(out[:, :length])  # (B, L, D)
        if context is None or self.context_out is None:
            return x_out, None
        return x_out, self.context_out(out[:, length:])  # (B, S, D)
