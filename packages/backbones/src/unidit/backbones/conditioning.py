"""The conditioning vector that drives adaLN: timestep (+ modality) (+ pooled text).

* Timestep: sinusoids + MLP (DiT, Peebles & Xie 2023, §3.2), per sample or
  per token.
* Pooled text: SD3 (Esser et al. 2024, §4) adds a pooled text embedding to
  the timestep embedding; here the pooled vector is the masked mean of the
  context tokens, RMS-normalised and mapped by a *zero-initialised* linear,
  so a fresh Flag-DiT still ignores the text exactly.
* Modality: an optional learned embedding per modality id (the only thing the
  backbone knows about modalities, see DESIGN.md).

Per-token times (held tokens at ``t = 0``, LTX-Video's per-token timesteps)
take few values: a sample's tokens are either held or at the sample's time.
:func:`condition_rows` finds the distinct (sample, time) pairs, so the
timestep MLP and every block's adaLN linear run once per pair instead of once
per token, and :mod:`unidit.backbones.modulation` spreads the results onto the
tokens by index (as for a varlen row's per-sample conditioning).
"""

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn
from unidit.backbones.adaln import ZeroLinear
from unidit.backbones.norms import RMSNorm
from unidit.backbones.timestep import TimestepEmbedder


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``x`` ``(B, N, C)`` over the tokens where ``mask`` ``(B, N)`` is True -> ``(B, C)``.

    Samples without any True token give zeros.
    """
    if mask is None:
        return x.mean(dim=1)  # (B, C)
    weights = mask.to(x.dtype)[..., None]  # (B, N, 1)
    total = (x * weights).sum(dim=1)  # (B, C)
    return total / weights.sum(dim=1).clamp(min=1.0)  # (B, C)


@dataclass(frozen=True)
class ConditionRows:
    """Per-token times as the distinct (sample, time) pairs they hold."""

    t: Tensor  # (U,) the time of each pair
    sample: Tensor  # (U,) long, the sample of each pair (a batch row, or a varlen row's sample)
    index: Tensor  # (B·L,) or (T,) long, each token's pair, tokens in memory order

    def sample_mean(self, c: Tensor, key_mask: Tensor, num_samples: int) -> Tensor:
        """Each sample's mean over its real tokens of the per-pair conditioning ``c`` ``(U, 1, D)`` -> ``(N, 1, D)``.

        The masked token mean of the per-token conditioning, without building it
        (MMDiT's context stream, which has no token axis of its own).
        """
        real = torch.zeros(c.shape[0], dtype=c.dtype, device=c.device).index_add_(
            0, self.index, key_mask.reshape(-1).to(c.dtype))  # (U,) real tokens of each pair
        total = c.new_zeros(num_samples, c.shape[-1]).index_add_(0, self.sample, c[:, 0] * real[:, None])  # (N, D)
        count = c.new_zeros(num_samples).index_add_(0, self.sample, real).clamp(min=1.0)  # (N,)
        return rearrange(total / count[:, None], "n d -> n 1 d")  # (N, 1, D)


def condition_rows(t: Tensor, sample_of_token: Tensor) -> ConditionRows:
    """Per-token times ``t`` ``(B, L)`` / ``(1, T)`` and each token's sample ``(B·L,)`` -> the distinct pairs.

    The pairs are found exactly, sorted by sample then time: each time is replaced by
    its rank among the distinct times, and one integer key per token,
    ``sample · V + rank``, goes through a 1-D ``torch.unique`` (a sort; the
    row-wise ``unique(dim=0)`` compares rows one by one and cost 10% of a
    shape3d training step on CPU).
    """
    times, rank = torch.unique(t.reshape(-1), return_inverse=True)  # (V,), (B·L,)
    keys = sample_of_token.reshape(-1).long() * times.numel() + rank  # (B·L,)
    pairs, index = torch.unique(keys, return_inverse=True)  # (U,), (B·L,)
    return ConditionRows(times[pairs % times.numel()], pairs // times.numel(), index)


class ConditionEmbedder(nn.Module):
    """``t`` ``(B,)`` / ``(B, L)`` (+ context, modality) -> ``c`` ``(B, 1|L, dim)``.

    Args:
        dim: model width.
        context_dim: width of the text context tokens.
        pooled_context: add the zero-initialised projection of the pooled context.
        num_modalities: > 0 adds ``nn.Embedding(num_modalities, dim)`` indexed by ``modality``.
        eps: RMSNorm epsilon of the pooled context.
    """

    def __init__(
        self, dim: int, context_dim: int, pooled_context: bool = True, num_modalities: int = 0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.timestep = TimestepEmbedder(dim)
        self.modality = nn.Embedding(num_modalities, dim) if num_modalities > 0 else None
        if self.modality is not None:
            nn.init.normal_(self.modality.weight, std=0.02)
        self.pooled = nn.Sequential(RMSNorm(context_dim, eps), ZeroLinear(context_dim, dim)) if pooled_context else None

    def forward(
        self,
        t: Tensor,
        context: Tensor | None,
        context_mask: Tensor | None,
        modality: Tensor | None,
        sample_index: Tensor | None = None,
    ) -> Tensor:
        """``c`` ``(B, 1|L, D)``, or ``(U, 1, D)`` for the rows of :func:`condition_rows`.

        ``context`` and ``modality`` are per sample; ``sample_index`` ``(U,)``, when
        given, names the sample of each row of ``t`` ``(U,)`` (a varlen row's
        samples, or the (sample, time) pairs of per-token times).
        """
        c = self.timestep(t)  # (B, 1|L, D)

        def add(c: Tensor, term: Tensor) -> Tensor:  # a per-sample term (B, D) onto c
            if sample_index is not None:
                term = term.index_select(0, sample_index)  # (U, D)
            return c + rearrange(term, "b d -> b 1 d")  # (B|U, 1|L, D)

        if modality is not None:
            if self.modality is None:
                raise ValueError("modality was given but the backbone has num_modalities=0")
            c = add(c, self.modality(modality))
        if self.pooled is not None and context is not None:
            c = add(c, self.pooled(masked_mean(context, context_mask)))
        return c


def conditioning(
    embedder: ConditionEmbedder,
    t: Tensor,
    context: Tensor | None,
    context_mask: Tensor | None,
    modality: Tensor | None,
    row,
    key_mask: Tensor,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """The backbones' conditioning: ``(c, index, per_sample_c)``.

    * ``t`` ``(B,)`` / ``(N,)`` (one time per sample): ``c`` ``(B|N, 1, D)``; ``index`` None
      (a padded batch broadcasts) or each token's sample ``(T,)`` in a varlen ``row``.
    * ``t`` ``(B, L)`` / ``(1, T)`` (per-token times): ``c`` ``(U, 1, D)`` for the distinct
      (sample, time) pairs (:func:`condition_rows`) and ``index`` ``(B·L,)`` each token's pair;
      without autograd (sampling) a padded batch keeps ``c`` ``(B, L, D)`` per token and ``index`` None.

    ``per_sample_c`` ``(B|N, 1, D)`` is each sample's mean conditioning over its real tokens
    (MMDiT's context stream). ``row`` is the forward's :class:`~unidit.backbones.varlen.VarlenRow` or None.
    """
    if t.dim() < 2:
        c = embedder(t, context, context_mask, modality)  # (B|N, 1, D)
        return c, None if row is None else row.expand_index(c), c
    if row is None and not torch.is_grad_enabled():
        # sampling: the pairs save mostly backward work, so a padded batch without autograd keeps
        # the per-token tensors (the sampling speed of the code before the pairs)
        c = embedder(t, context, context_mask, modality)  # (B, L, D)
        return c, None, rearrange(masked_mean(c, key_mask), "b d -> b 1 d")
    if row is None:
        batch, length = key_mask.shape
        sample_of_token = torch.arange(batch, device=t.device).repeat_interleave(length)  # (B·L,)
        samples = batch
    else:
        sample_of_token, samples = row.sample_of_token, row.num_samples
    rows = condition_rows(t, sample_of_token)
    c = embedder(rows.t, context, context_mask, modality, rows.sample)  # (U, 1, D)
    return c, rows.index, rows.sample_mean(c, key_mask, samples)
