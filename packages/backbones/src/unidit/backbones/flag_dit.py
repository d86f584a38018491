"""Flag-DiT: the flow-based large diffusion transformer of Lumina-T2X.

Gao et al., "Lumina-T2X: Transforming Text into Any Modality, Resolution,
and Duration via Flow-based Large Diffusion Transformers", 2024
(arXiv:2405.05945), §2.3 "Flag-DiT", with the refinements of Lumina-Next
(Zhuo et al. 2024, arXiv:2406.18583, §3): pre-norm RMSNorm blocks, QK-norm,
axial 3D RoPE on the layout's (frame, row, col) positions, SwiGLU, adaLN
modulation from the timestep (DiT's adaLN-Zero, Peebles & Xie 2023, §3.2),
learned ``[nextline]`` / ``[nextframe]`` tokens, and text injected through
*zero-initialised, tanh-gated* cross-attention. At initialisation the
cross-attention gates and the pooled-text projection are zero, so the output
of a fresh model is bit-identical whatever the context: it starts as an
unconditional model and learns to listen to the text.

The timestep may differ per token (LTX-Video, HaCohen et al. 2024): every
adaLN tensor keeps the token axis, so conditioning tokens held at ``t = 0``
are modulated as clean data while the rest are denoised.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from unidit.backbones.adaln import AdaLN, FinalNorm, dit_initialize
from unidit.backbones.attention import (
    AttentionMask,
    CrossAttention,
    SelfAttention,
    drop_padding_columns,
    key_padding_mask,
    same_window,
)
from unidit.backbones.conditioning import ConditionEmbedder, conditioning
from unidit.backbones.config import BackboneConfig
from unidit.backbones.mlp import SwiGLU
from unidit.backbones.modulation import gated_residual, modulate
from unidit.backbones.norms import RMSNorm
from unidit.backbones.placeholders import PlaceholderEmbedding
from unidit.backbones.rope import AxialRoPE
from unidit.backbones.step_cache import StepCache
from unidit.backbones.training_blocks import training_block
from unidit.backbones.varlen import VarlenRow, pad_context_columns, varlen_row


class FlagDiTBlock(nn.Module):
    """One Flag-DiT block: (self-attn + gated cross-attn) then SwiGLU, both adaLN-modulated."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        dim, heads, eps = config.dim, config.num_heads, config.norm_eps
        self.norm1 = RMSNorm(dim, eps, elementwise_affine=False)
        self.attn = SelfAttention(dim, heads, config.qk_norm, eps)
        self.cross_attn = CrossAttention(dim, heads, dim, config.qk_norm, eps, gate_init=config.cross_gate_init)
        self.norm2 = RMSNorm(dim, eps, elementwise_affine=False)
        self.mlp = SwiGLU(dim, config.mlp_ratio)
        self.adaln = AdaLN(dim, 6)

    def forward(
        self,
        x: Tensor,
        c_act: Tensor,
        rope: Tensor,
        mask: AttentionMask | VarlenRow | None,
        context: Tensor | None,
        context_mask: AttentionMask | VarlenRow | None,
        cond_index: Tensor | None = None,
    ) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(c_act)  # (B|N, L|1, D) each
        h = modulate(self.norm1(x), shift1, scale1, cond_index)  # (B, L, D)
        update = self.attn(h, rope, mask)  # (B, L, D)
        if context is not None:
            update = update + self.cross_attn(h, context, context_mask)  # (B, L, D)
        x = gated_residual(x, gate1, update, cond_index)  # (B, L, D)
        update = self.mlp(modulate(self.norm2(x), shift2, scale2, cond_index))  # (B, L, D)
        return gated_residual(x, gate2, update, cond_index)  # (B, L, D)


class FlagDiT(nn.Module, PyTorchModelHubMixin, library_name="unidit", tags=["diffusion", "flag-dit"]):
    """Flag-DiT backbone over packed token sequences; see the module docstring.

    ``save_pretrained`` writes ``config.json`` (the :class:`BackboneConfig`)
    and ``model.safetensors``; ``from_pretrained`` reads them back.
    """

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        if config.arch != "flag_dit":
            raise ValueError(f"arch: FlagDiT needs config.arch == 'flag_dit', got {config.arch!r}")
        self.config = config
        dim = config.dim
        self.placeholders = PlaceholderEmbedding(dim)
        self.condition = ConditionEmbedder(
            dim, config.context_dim, config.pooled_context, config.num_modalities, config.norm_eps
        )
        # Lumina-Next's caption embedder: norm + linear, applied once and shared by all blocks
        self.context_embed = nn.Sequential(
            RMSNorm(config.context_dim, config.norm_eps), nn.Linear(config.context_dim, dim)
        )
        self.rope = AxialRoPE(config.head_dim, config.rope_theta, config.resolved_rope_axes)
        self.blocks = nn.ModuleList(FlagDiTBlock(config) for _ in range(config.depth))
        self.final = FinalNorm(dim, config.norm_eps)
        self.step_cache: StepCache | None = None  # set by cached_steps() while sampling
        dit_initialize(self)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        positions: Tensor,
        slot_kind: Tensor,
        key_mask: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        modality: Tensor | None = None,
        segment_lengths: Sequence[int] | None = None,
    ) -> Tensor:
        """Denoiser hidden states ``(B, L, dim)``.

        Args:
            x: ``(B, L, dim)`` embedded latent tokens.
            t: ``(B,)`` or ``(B, L)`` timesteps in [0, 1] (0 = data, 1 = noise).
            positions: ``(B, L, 3)`` long (frame, row, col) RoPE positions.
            slot_kind: ``(B, L)`` long DATA / NEXTLINE / NEXTFRAME / PAD.
            key_mask: ``(B, L)`` bool, True at real (non-PAD) slots.
            context: ``(B, S, context_dim)`` text hidden states, or None (unconditional).
            context_mask: ``(B, S)`` bool, True at real context tokens; None = all real.
            modality: ``(B,)`` long modality ids, or None.
            segment_lengths: varlen packing (:func:`~unidit.backbones.layout.pack_varlen`):
                the tokens of each sample in the single row ``B = 1``, which then holds
                ``N`` samples end to end; ``t`` is ``(N,)`` or ``(1, L)``, ``context``
                ``(N, S, context_dim)``, ``context_mask`` ``(N, S)``, ``modality`` ``(N,)``.
                Attention stays inside each sample; the result equals running the
                samples one by one.
        """
        config = self.config
        key_mask = key_mask.bool()
        x = self.placeholders(x, slot_kind, key_mask)  # (B, L, D)
        rope = self.rope(positions)  # (B, 1, L, Dh/2, 2) cos, sin
        ctx, kept_context_mask = None, None
        if context is not None:
            ctx = self.context_embed(context)  # (B, S, D)
            if context_mask is not None:
                ctx, kept_context_mask = drop_padding_columns(ctx, context_mask.bool())  # (B, S', D), (B, S')
                if segment_lengths is not None:
                    ctx, kept_context_mask = pad_context_columns(ctx, kept_context_mask)  # (N, S'', D), (N, S'')
        row = varlen_row(segment_lengths, x, key_mask, kept_context_mask, bool(config.window_blocks))
        c, cond_index, _ = conditioning(self.condition, t, context, context_mask, modality, row, key_mask)
        c_act = F.silu(c)  # (B|N|U, 1, D)
        if row is not None:  # one varlen row: self- and cross-attention stay inside each sample
            pad_mask = ctx_mask = row
        else:
            pad_mask = key_padding_mask(key_mask)  # (B, 1, 1, L) | None
            ctx_mask = None if kept_context_mask is None else key_padding_mask(kept_context_mask)  # (B, 1, 1, S')
        window_mask = None
        if config.window_blocks:
            allowed = same_window(positions, config.window_size) & rearrange(key_mask, "b k -> b 1 k")  # (B, L, L)
            window_mask = AttentionMask.from_bool(rearrange(allowed, "b q k -> b 1 q k"))  # (B, 1, L, L)

        def run_blocks(x: Tensor) -> Tensor:
            for index, block in enumerate(self.blocks):
                mask = window_mask if index in config.window_blocks else pad_mask
                x = self._run_block(block, x, c_act, rope, mask, ctx, ctx_mask, cond_index)  # (B, L, D)
            return x

        x = run_blocks(x) if self.step_cache is None else self.step_cache.run(x, run_blocks)  # (B, L, D)
        return self.final(x, c_act, cond_index)  # (B, L, D)

    def _run_block(self, block: nn.Module, *args) -> Tensor:
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return training_block(self, block)(*args)  # compiled for training steps when asked (training_blocks.py)
