"""Axial 3D rotary position embedding (RoPE).

RoPE (Su et al., "RoFormer", 2021, arXiv:2104.09864, §3.4) rotates each pair of
query/key channels by an angle proportional to the token position, so that
attention scores depend on relative positions only. Lumina-T2X (Gao et al.,
2024, arXiv:2405.05945) and Lumina-Next (Zhuo et al., 2024, arXiv:2406.18583,
§3 "3D RoPE") make it *axial*: the head dimension is cut into three parts, one
per (frame, row, column) axis, and each part is rotated by its own coordinate.

Position 0 on an axis is the identity rotation (cos 0 = 1, sin 0 = 0 exactly),
so tokens at the origin -- such as text tokens -- are left untouched.
"""

import torch
from einops import rearrange
from torch import Tensor, nn


def default_rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Split an even ``head_dim`` into three even parts (frame, row, col).

    Frame and row get ``2 * (head_dim // 6)`` channels each, the column axis
    the rest: the layout puts 1-axis grids (audio, motion, text latents) on
    the column axis, so that axis gets the largest share.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    part = 2 * (head_dim // 6)
    return (part, part, head_dim - 2 * part)


class AxialRoPE(nn.Module):
    """Frequencies of an axial 3D RoPE; ``forward`` turns positions into cos/sin.

    Args:
        head_dim: channels per attention head (even).
        theta: RoPE base; axis part of size ``d`` uses frequencies
            ``theta ** (-2i / d)`` for ``i < d / 2``.
        axes: channels per (frame, row, col) axis, each even, summing to
            ``head_dim``; None = :func:`default_rope_axes`.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, axes: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        axes = tuple(axes) if axes is not None else default_rope_axes(head_dim)
        if len(axes) != 3 or any(a % 2 or a < 0 for a in axes) or sum(axes) != head_dim:
            raise ValueError(f"rope axes must be 3 even sizes summing to head_dim={head_dim}, got {axes}")
        self.head_dim = head_dim
        self.theta = theta
        self.axes = axes
        freqs, axis_of = [], []
        for axis, size in enumerate(axes):
            freqs.append(theta ** (-torch.arange(0, size, 2, dtype=torch.float64) / max(size, 1)))
            axis_of.append(torch.full((size // 2,), axis, dtype=torch.long))
        # one frequency per rotated pair, and the axis whose coordinate drives it
        self.register_buffer("freqs", torch.cat(freqs).float(), persistent=False)  # (Dh/2,)
        self.register_buffer("axis_of", torch.cat(axis_of), persistent=False)  # (Dh/2,)

    def forward(self, positions: Tensor) -> Tensor:
        """Integer positions ``(B, L, 3)`` -> rotations ``(B, 1, L, Dh/2, 2)``: (cos, sin) per channel pair.

        The extra axis broadcasts over heads; compute once per forward and
        share across blocks.
        """
        coords = positions.float()[..., self.axis_of]  # (B, L, Dh/2)
        angles = rearrange(coords * self.freqs, "b l d -> b 1 l d")  # (B, 1, L, Dh/2)
        return torch.stack((angles.cos(), angles.sin()), dim=-1)  # (B, 1, L, Dh/2, 2)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}, axes={self.axes}"


def apply_rope(x: Tensor, rotations: Tensor) -> Tensor:
    """Rotate adjacent channel pairs of ``x`` ``(B, H, L, Dh)`` by ``rotations`` ``(B, 1, L, Dh/2, 2)``.

    Computed in float32, returned in ``x``'s dtype. Eager mode reads each pair as one complex number
    and multiplies by ``cos + i·sin``: one kernel forward and one backward, where the real-valued form
    needs an unbind and a stack each way (3.6x slower on CPU at 1056 tokens). Under ``torch.compile``
    the real-valued form is used instead: Inductor generates no code for complex operators, while it
    fuses the real form into one kernel.
    """
    if torch.compiler.is_compiling():
        return rotate_pairs_real(x, rotations)
    return rotate_pairs_complex(x, rotations)


def rotate_pairs_complex(x: Tensor, rotations: Tensor) -> Tensor:
    """:func:`apply_rope` as a complex multiply (eager)."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (B, H, L, Dh/2) complex
    return torch.view_as_real(pairs * torch.view_as_complex(rotations)).flatten(-2).to(x.dtype)  # (B, H, L, Dh)


def rotate_pairs_real(x: Tensor, rotations: Tensor) -> Tensor:
    """:func:`apply_rope` with real arithmetic (for ``torch.compile``)."""
    cos, sin = rotations.unbind(-1)  # (B, 1, L, Dh/2) each
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, H, L, Dh/2) each
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, L, Dh/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (B, H, L, Dh)
