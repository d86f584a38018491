"""MM-DiT: the multimodal diffusion transformer of Stable Diffusion 3.

Esser et al., "Scaling Rectified Flow Transformers for High-Resolution Image
Synthesis", 2024 (arXiv:2403.03206), §4 and Fig. 2: text and latent tokens
keep separate weights (input projection, per-stream QKV / output / MLP /
adaLN) and meet in one joint attention per block. The last block's context
stream only supplies keys and values ("pre-only"), so no weight is left
without a gradient. As in SD3 the pooled text joins the timestep embedding.

Adaptations for this project: axial 3D RoPE rotates the latent tokens only
(text tokens sit at position 0, i.e. no rotation); the latent stream is
modulated per token (per-token timesteps, LTX-Video), the context stream by
the masked mean of that conditioning over the real latent tokens; DiT-3D
window blocks restrict latent-to-latent attention to windows while every
latent token still sees the text.
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
    JointAttention,
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


class MMDiTBlock(nn.Module):
    """One MM-DiT block: per-stream adaLN, joint attention, per-stream SwiGLU."""

    def __init__(self, config: BackboneConfig, context_pre_only: bool = False) -> None:
        super().__init__()
        dim, heads, eps = config.dim, config.num_heads, config.norm_eps
        self.context_pre_only = context_pre_only
        self.norm1 = RMSNorm(dim, eps, elementwise_affine=False)
        self.norm2 = RMSNorm(dim, eps, elementwise_affine=False)
        self.mlp = SwiGLU(dim, config.mlp_ratio)
        self.adaln = AdaLN(dim, 6)
        self.attn = JointAttention(dim, heads, config.qk_norm, eps, context_pre_only)
        self.context_norm1 = RMSNorm(dim, eps, elementwise_affine=False)
        self.context_adaln = AdaLN(dim, 2 if context_pre_only else 6)
        if not context_pre_only:
            self.context_norm2 = RMSNorm(dim, eps, elementwise_affine=False)
            self.context_mlp = SwiGLU(dim, config.mlp_ratio)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None,
        c_act: Tensor,
        c_context_act: Tensor,
        rope: Tensor,
        mask: AttentionMask | VarlenRow | None,
        cond_index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(c_act)  # (B|N, L|1, D) each
        h = modulate(self.norm1(x), shift1, scale1, cond_index)  # (B, L, D)
        h_context, context_mods = None, ()
        if context is not None:
            context_mods = self.context_adaln(c_context_act)  # (B, 1, D) each
            h_context = modulate(self.context_norm1(context), context_mods[0], context_mods[1])  # (B, S, D)
        update, context_update = self.attn(h, h_context, rope, mask)  # (B, L, D), (B, S, D) | None
        x = gated_residual(x, gate1, update, cond_index)  # (B, L, D)
        update = self.mlp(modulate(self.norm2(x), shift2, scale2, cond_index))  # (B, L, D)
        x = gated_residual(x, gate2, update, cond_index)  # (B, L, D)
        if context_update is None:
            return x, context
        _, _, c_gate1, c_shift2, c_scale2, c_gate2 = context_mods
        context = gated_residual(context, c_gate1, context_update)  # (B, S, D)
        context_update = self.context_mlp(modulate(self.context_norm2(context), c_shift2, c_scale2))  # (B, S, D)
        return x, gated_residual(context, c_gate2, context_update)  # (B, L, D), (B, S, D)


class MMDiT(nn.Module, PyTorchModelHubMixin, library_name="unidit", tags=["diffusion", "mmdit"]):
    """MM-DiT backbone with the same forward contract as :class:`~unidit.backbones.flag_dit.FlagDiT`.

    ``save_pretrained`` writes ``config.json`` and ``model.safetensors``.
    """

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        if config.arch != "mmdit":
            raise ValueError(f"arch: MMDiT needs config.arch == 'mmdit', got {config.arch!r}")
        self.config = config
        dim = config.dim
        self.placeholders = PlaceholderEmbedding(dim)
        self.condition = ConditionEmbedder(
            dim, config.context_dim, config.pooled_context, config.num_modalities, config.norm_eps
        )
        self.context_embed = nn.Sequential(
            RMSNorm(config.context_dim, config.norm_eps), nn.Linear(config.context_dim, dim)
        )
        self.rope = AxialRoPE(config.head_dim, config.rope_theta, config.resolved_rope_axes)
        self.blocks = nn.ModuleList(
            MMDiTBlock(config, context_pre_only=index == config.depth - 1) for index in range(config.depth)
        )
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
        """Denoiser hidden states ``(B, L, dim)``; arguments as in ``FlagDiT.forward``.

        With ``context=None`` the context stream is skipped and the joint
        attention is plain self-attention over the latent tokens.
        """
        config = self.config
        key_mask = key_mask.bool()
        x = self.placeholders(x, slot_kind, key_mask)  # (B, L, D)
        rope = self.rope(positions)  # (B, 1, L, Dh/2, 2) cos, sin
        ctx, kept_mask = None, None
        joint_keys = key_mask  # (B, L)
        if context is not None:
            ctx = self.context_embed(context)  # (B, S, D)
            if context_mask is None:
                kept_mask = torch.ones(ctx.shape[:2], dtype=torch.bool, device=ctx.device)  # (B, S)
            else:
                ctx, kept_mask = drop_padding_columns(ctx, context_mask.bool())  # (B, S', D), (B, S')
            if segment_lengths is None:
                joint_keys = torch.cat([key_mask, kept_mask], dim=1)  # (B, L+S), latent first
            else:
                ctx, kept_mask = pad_context_columns(ctx, kept_mask)  # (N, S'', D), (N, S'')
        row = varlen_row(segment_lengths, x, key_mask, kept_mask, bool(config.window_blocks))
        c, cond_index, per_sample_c = conditioning(self.condition, t, context, context_mask, modality, row, key_mask)
        c_act = F.silu(c)  # (B|N|U, 1, D)
        c_context_act = F.silu(per_sample_c)  # (B|N, 1, D)
        pad_mask = row if row is not None else key_padding_mask(joint_keys)  # VarlenRow | (B, 1, 1, L+S) | None
        window_mask = None
        if config.window_blocks:
            window_mask = AttentionMask.from_bool(self._window_mask(positions, joint_keys))  # (B, 1, L+S, L+S)

        def run_blocks(x: Tensor) -> Tensor:
            stream = ctx
            for index, block in enumerate(self.blocks):
                mask = window_mask if index in config.window_blocks else pad_mask
                x, stream = self._run_block(block, x, stream, c_act, c_context_act, rope, mask, cond_index)
            return x

        x = run_blocks(x) if self.step_cache is None else self.step_cache.run(x, run_blocks)  # (B, L, D)
        return self.final(x, c_act, cond_index)  # (B, L, D)

    def _window_mask(self, positions: Tensor, joint_keys: Tensor) -> Tensor:
        """Latent pairs must share a window; pairs involving context tokens are free (then key-masked)."""
        batch, length = positions.shape[:2]
        total = joint_keys.shape[1]
        allowed = torch.ones(batch, total, total, dtype=torch.bool, device=positions.device)  # (B, N, N)
        allowed[:, :length, :length] = same_window(positions, self.config.window_size)  # (B, L, L)
        allowed = allowed & rearrange(joint_keys, "b k -> b 1 k")  # (B, N, N)
        return rearrange(allowed, "b q k -> b 1 q k")  # (B, 1, N, N)

    def _run_block(self, block: nn.Module, *args) -> tuple[Tensor, Tensor | None]:
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return training_block(self, block)(*args)  # compiled for training steps when asked (training_blocks.py)
