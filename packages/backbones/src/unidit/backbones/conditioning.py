"""The conditioning vector that drives adaLN: timestep (+ modality) (+ pooled text).

* Timestep: sinusoids + MLP (DiT, Peebles & Xie 2023, §3.2), per sample or
  per token.
* Pooled text: SD3 (Esser et al. 2024, §4) adds a pooled text embedding to
  the timestep embedding; here the pooled vector is the masked mean of the
  context tokens, RMS-normalised and mapped by a *zero-initialised* linear,
  so a fresh Flag-DiT still ignores the text exactly.
* Modality: an optional learned embedding per modality id (the only thing the
  backbone knows about modalities, see DESIGN.md).
"""

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
        sample_of_token: Tensor | None = None,
    ) -> Tensor:
        """``c`` ``(B, 1|L, D)``.

        In a varlen row (``sample_of_token`` ``(T,)``) ``context`` and
        ``modality`` are per sample; per-sample ``t`` ``(N,)`` gives ``(N, 1, D)``,
        per-token ``t`` ``(1, T)`` gives ``(1, T, D)`` with each token taking its
        sample's text and modality terms.
        """
        c = self.timestep(t)  # (B, 1|L, D)
        per_token = sample_of_token is not None and c.shape[1] > 1  # per-token t in a varlen row

        def add(c: Tensor, term: Tensor) -> Tensor:  # a per-sample term (B, D) onto c
            if per_token:
                return c + term.index_select(0, sample_of_token)[None]  # (1, T, D)
            return c + rearrange(term, "b d -> b 1 d")  # (B, 1|L, D)

        if modality is not None:
            if self.modality is None:
                raise ValueError("modality was given but the backbone has num_modalities=0")
            c = add(c, self.modality(modality))
        if self.pooled is not None and context is not None:
            c = add(c, self.pooled(masked_mean(context, context_mask)))
        return c


def per_sample(c: Tensor, key_mask: Tensor) -> Tensor:
    """Reduce a per-token conditioning ``(B, L, D)`` to ``(B, 1, D)`` by the masked mean over real tokens.

    Used for streams that have no token axis of their own (MMDiT's context
    stream); a ``(B, 1, D)`` input is returned as is.
    """
    if c.shape[1] == 1:
        return c
    return rearrange(masked_mean(c, key_mask), "b d -> b 1 d")  # (B, 1, D)
