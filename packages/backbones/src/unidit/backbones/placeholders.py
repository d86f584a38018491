"""Learned ``[nextline]`` / ``[nextframe]`` embeddings (Lumina-T2X, Gao et al. 2024, §2).

The layout inserts placeholder slots after every row and frame so that one
1D sequence can describe any 1-3 axis grid; their content is learned by the
backbone. Here the embedded input tokens at those slots are replaced by two
learned vectors, and PAD slots are zeroed so that nothing non-finite in the
padding can reach real tokens through masked attention.
"""

import torch
from einops import rearrange
from torch import Tensor, nn
from unidit.backbones.slots import NEXTFRAME, NEXTLINE


class PlaceholderEmbedding(nn.Module):
    """Replace NEXTLINE / NEXTFRAME slots of ``x`` by learned vectors, zero PAD slots.

    Args:
        dim: model width.
        init_std: std of the small normal initialisation.
    """

    def __init__(self, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.nextline = nn.Parameter(torch.randn(dim) * init_std)  # (D,)
        self.nextframe = nn.Parameter(torch.randn(dim) * init_std)  # (D,)

    def forward(self, x: Tensor, slot_kind: Tensor, key_mask: Tensor) -> Tensor:
        """``x`` ``(B, L, D)``, ``slot_kind`` ``(B, L)`` long, ``key_mask`` ``(B, L)`` bool -> ``(B, L, D)``."""
        kind = rearrange(slot_kind, "b l -> b l 1")  # (B, L, 1)
        x = torch.where(kind == NEXTLINE, self.nextline.to(x.dtype), x)  # (B, L, D)
        x = torch.where(kind == NEXTFRAME, self.nextframe.to(x.dtype), x)  # (B, L, D)
        return x.masked_fill(~rearrange(key_mask, "b l -> b l 1"), 0.0)  # (B, L, D)
