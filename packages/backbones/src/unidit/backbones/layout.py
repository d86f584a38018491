"""One token sequence for every modality (Lumina-T2X, Gao et al. 2024, §2).

A latent ``(C, *grid)`` with 1 to 3 grid axes is cut into non-overlapping
patches and flattened in raster order into a single 1D sequence. Lumina-T2X
inserts learnable ``[nextline]`` tokens after the last patch of each row and
``[nextframe]`` tokens after the last row of each frame, so that one backbone
sees images, videos (and here voxels, audio, motion) without knowing which.

Every grid is treated as a (frame, row, column) grid of patches:

* 1 axis ``(C, T)``       -> frames = rows = 1, columns = T'; no placeholders.
  Positions ``(0, 0, t)``.
* 2 axes ``(C, H, W)``    -> one frame; a NEXTLINE slot ends every row.
  Positions ``(0, row, col)``; the NEXTLINE of a row sits just past its last
  patch, at ``(0, row, W')``.
* 3 axes ``(C, F, H, W)`` -> NEXTLINE after every row, then a NEXTFRAME slot
  after the last row of each frame, just past the frame's last row, at
  ``(f, H', 0)``.

(``T'``, ``H'``, ``W'`` count patches, not latent cells.) Samples of different
sizes share a batch by right-padding with PAD slots; ``key_mask`` hides them
from attention. :func:`pack_varlen` instead puts them end to end in one row
with no padding at all (varlen packing, :mod:`unidit.backbones.varlen`).
Patch vectors are ordered ``(c p1 p2 p3)``. Placeholder and PAD slots carry
zero vectors: the backbone replaces placeholders by its learned embeddings.
``unpack`` is the exact inverse of ``pack`` and of ``pack_varlen``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor
from unidit.backbones.slots import DATA, NEXTFRAME, NEXTLINE, PAD

# einops patterns from a latent (C, *grid) to a grid of patch vectors, and back.
_PATCHIFY = {
    1: "c (t p1) -> t (c p1)",
    2: "c (h p1) (w p2) -> h w (c p1 p2)",
    3: "c (f p1) (h p2) (w p3) -> f h w (c p1 p2 p3)",
}
_UNPATCHIFY = {
    1: "t (c p1) -> c (t p1)",
    2: "(h w) (c p1 p2) -> c (h p1) (w p2)",
    3: "(f h w) (c p1 p2 p3) -> c (f p1) (h p2) (w p3)",
}
_AXIS_NAMES = {1: ("t",), 2: ("h", "w"), 3: ("f", "h", "w")}


def _batched(pattern: str) -> str:
    """The same einops pattern with a leading batch axis on both sides."""
    left, right = pattern.split("->")
    return f"b {left.strip()} -> b {right.strip()}"


@dataclass
class PackedBatch:
    """A batch of latents laid out as one padded token sequence per sample."""

    tokens: Tensor  # (B, L, P) patch vectors, zeros at placeholder and PAD slots
    positions: Tensor  # (B, L, 3) long (frame, row, col)
    slot_kind: Tensor  # (B, L) long DATA / NEXTLINE / NEXTFRAME / PAD
    shapes: list[tuple[int, ...]]  # each sample's latent shape (C, *grid)
    patch_size: tuple[int, ...]  # one per grid axis
    # varlen packing (pack_varlen): every sample end to end in one row (B = 1, no PAD), this many slots each
    segment_lengths: list[int] | None = None

    @property
    def key_mask(self) -> Tensor:
        """True at every real slot (data or placeholder), False at padding."""
        return self.slot_kind != PAD  # (B, L)

    @property
    def data_mask(self) -> Tensor:
        """True at slots holding a patch of the latent."""
        return self.slot_kind == DATA  # (B, L)

    @property
    def lengths(self) -> Tensor:
        """Number of non-PAD slots per sample."""
        if self.segment_lengths is not None:
            return torch.tensor(self.segment_lengths, device=self.slot_kind.device)  # (N,)
        return self.key_mask.sum(dim=1)  # (B,)

    def to(self, device: torch.device | str) -> PackedBatch:
        return PackedBatch(
            tokens=self.tokens.to(device),
            positions=self.positions.to(device),
            slot_kind=self.slot_kind.to(device),
            shapes=list(self.shapes),
            patch_size=self.patch_size,
            segment_lengths=None if self.segment_lengths is None else list(self.segment_lengths),
        )


def _patch_tuple(patch_size: int | Sequence[int], n_axes: int) -> tuple[int, ...]:
    if isinstance(patch_size, int):
        patch = (patch_size,) * n_axes
    else:
        patch = tuple(int(p) for p in patch_size)
    if len(patch) != n_axes:
        raise ValueError(f"patch_size {patch} has {len(patch)} entries for a {n_axes}-axis grid")
    if any(p < 1 for p in patch):
        raise ValueError(f"patch sizes must be positive, got {patch}")
    return patch


def _patch_grid(shape: Sequence[int], patch: tuple[int, ...]) -> tuple[int, ...]:
    """Grid of patches of a latent shape ``(C, *grid)``; checks divisibility."""
    grid = tuple(shape[1:])
    names = _AXIS_NAMES[len(grid)]
    for axis, (size, p) in enumerate(zip(grid, patch, strict=True)):
        if size % p != 0:
            raise ValueError(
                f"grid axis {axis} ({names[axis]}) has size {size}, not divisible by its patch size {p}"
            )
        if size == 0:
            raise ValueError(f"grid axis {axis} ({names[axis]}) is empty")
    return tuple(s // p for s, p in zip(grid, patch, strict=True))


def _as_fhw(patch_grid: tuple[int, ...]) -> tuple[int, int, int]:
    """Embed a 1-3 axis patch grid in (frames, rows, cols)."""
    return (1,) * (3 - len(patch_grid)) + patch_grid  # type: ignore[return-value]


def layout_length(shape: Sequence[int], patch_size: int | Sequence[int]) -> int:
    """Number of slots (data + placeholders, no padding) for a latent shape ``(C, *grid)``."""
    n_axes = len(shape) - 1
    if n_axes not in _PATCHIFY:
        raise ValueError(f"latent shape {tuple(shape)} must be (C, *grid) with 1-3 grid axes")
    f, h, w = _as_fhw(_patch_grid(shape, _patch_tuple(patch_size, n_axes)))
    line = int(n_axes >= 2)  # one NEXTLINE per row
    frame = int(n_axes == 3)  # one NEXTFRAME per frame
    return f * (h * (w + line) + frame)


def _slot_layout(n_axes: int, f: int, h: int, w: int, device: torch.device):
    """Slot kinds and positions of one sample, built on the padded (F, H+1, W+1) grid.

    Returns ``keep`` (which cells of the padded grid exist, flat raster order),
    their ``kind`` and ``positions``.
    """
    line = int(n_axes >= 2)
    frame = int(n_axes == 3)
    fi, hi, wi = torch.meshgrid(
        torch.arange(f, device=device),
        torch.arange(h + frame, device=device),
        torch.arange(w + line, device=device),
        indexing="ij",
    )  # each (F, H+frame, W+line)
    is_data = (hi < h) & (wi < w)
    is_line = (hi < h) & (wi == w)
    is_frame = (hi == h) & (wi == 0)
    kind = torch.full_like(fi, PAD)
    kind[is_data] = DATA
    kind[is_line] = NEXTLINE
    kind[is_frame] = NEXTFRAME
    keep = (is_data | is_line | is_frame).flatten()  # (F·(H+frame)·(W+line),)
    positions = torch.stack([fi, hi, wi], dim=-1).flatten(0, 2)  # (N, 3)
    return keep, kind.flatten()[keep], positions[keep], is_data.flatten()


def pack(latents: Sequence[Tensor] | Tensor, patch_size: int | Sequence[int]) -> PackedBatch:
    """Patchify and lay out a batch of latents ``(C, *grid)`` as one padded token sequence.

    ``latents`` is a list of ``(C, *grid)`` tensors of any sizes, or one
    ``(B, C, *grid)`` tensor when all samples share a size. The slot layout is
    built once per distinct grid size; the patch vectors are then written
    into the sequence with a single indexed copy (no per-token loop, and one
    cheap backward node however large the batch).
    """
    if len(latents) == 0:
        raise ValueError("pack needs at least one latent")
    n_axes = latents[0].dim() - 1
    channels = latents[0].shape[0]
    if n_axes not in _PATCHIFY:
        raise ValueError(f"latent shape {tuple(latents[0].shape)} must be (C, *grid) with 1-3 grid axes")
    uniform = isinstance(latents, Tensor)
    if not uniform:
        for z in latents:
            if z.dim() - 1 != n_axes or z.shape[0] != channels:
                raise ValueError(
                    f"all latents must share channels and axis count; got {tuple(z.shape)} "
                    f"next to {tuple(latents[0].shape)}"
                )
        uniform = all(tuple(z.shape) == tuple(latents[0].shape) for z in latents)
    patch = _patch_tuple(patch_size, n_axes)
    p_dim = channels * math.prod(patch)
    kwargs = {f"p{i + 1}": p for i, p in enumerate(patch)}
    device, dtype = latents[0].device, latents[0].dtype
    shapes = [tuple(z.shape) for z in latents]

    layouts = {shape: _slot_layout(n_axes, *_as_fhw(_patch_grid(shape, patch)), device) for shape in set(shapes)}
    length = max(int(layouts[shape][0].sum()) for shape in layouts)
    batch = len(shapes)
    positions = torch.zeros(batch, length, 3, dtype=torch.long, device=device)  # (B, L, 3)
    slot_kind = torch.full((batch, length), PAD, dtype=torch.long, device=device)  # (B, L)
    data_slots = []  # per sample: flat indices (into B·L) of its data slots, raster order
    for b, shape in enumerate(shapes):
        keep, kind, pos, _ = layouts[shape]
        n = kind.shape[0]
        positions[b, :n] = pos
        slot_kind[b, :n] = kind
        data_slots.append(torch.nonzero(kind == DATA).squeeze(1) + b * length)
    if uniform:
        stacked = latents if isinstance(latents, Tensor) else torch.stack(list(latents))
        patches = rearrange(stacked, _batched(_PATCHIFY[n_axes]), **kwargs).reshape(-1, p_dim)  # (B·N, P)
    else:
        patches = torch.cat(
            [rearrange(z, _PATCHIFY[n_axes], **kwargs).reshape(-1, p_dim) for z in latents]
        )  # (ΣN_b, P)
    tokens = torch.zeros(batch * length, p_dim, dtype=dtype, device=device)  # (B·L, P)
    tokens = tokens.index_put((torch.cat(data_slots),), patches.to(dtype))
    return PackedBatch(
        tokens=tokens.view(batch, length, p_dim),
        positions=positions,
        slot_kind=slot_kind,
        shapes=shapes,
        patch_size=patch,
    )


def pack_varlen(latents: Sequence[Tensor] | Tensor, patch_size: int | Sequence[int]) -> PackedBatch:
    """Lay out latents of any sizes end to end in a single row ``(1, ΣL_i, P)``, with no padding.

    The varlen form of :func:`pack` (FlashAttention's ``cu_seqlens``, NaViT's
    example packing): each sample keeps its own slots, placeholders and
    positions, and ``segment_lengths`` says where one ends and the next begins.
    Give the backbone ``segment_lengths=batch.segment_lengths`` and it keeps
    attention inside each sample, so no compute goes to padding.
    :func:`unpack` reads it back unchanged.
    """
    padded = pack(latents, patch_size)
    keep = padded.key_mask  # (B, L)
    lengths = [int(n) for n in keep.sum(dim=1).tolist()]
    return PackedBatch(
        tokens=padded.tokens[keep][None],  # (1, T, P), sample by sample
        positions=padded.positions[keep][None],  # (1, T, 3)
        slot_kind=padded.slot_kind[keep][None],  # (1, T)
        shapes=padded.shapes,
        patch_size=padded.patch_size,
        segment_lengths=lengths,
    )


def _check_unpack(tokens: Tensor, batch: PackedBatch, channels: int | None) -> int:
    n_batch, length = batch.slot_kind.shape
    if tokens.shape[:2] != (n_batch, length):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not match the layout ({n_batch}, {length}, ·)")
    area = math.prod(batch.patch_size)
    out_channels = channels if channels is not None else batch.shapes[0][0]
    if tokens.shape[-1] != out_channels * area:
        raise ValueError(f"token width {tokens.shape[-1]} != channels {out_channels} x patch volume {area}")
    return out_channels


def unpack(tokens: Tensor, batch: PackedBatch, channels: int | None = None) -> list[Tensor]:
    """Inverse of :func:`pack`: drop placeholders and padding, return ``(C', *grid)`` per sample.

    ``tokens`` is ``(B, L, P')`` with ``P' = C' · prod(patch)``; ``C'`` defaults
    to the packed latents' channel count (a head may predict another number).
    """
    _check_unpack(tokens, batch, channels)
    patch = batch.patch_size
    n_axes = len(patch)
    kwargs = {f"p{i + 1}": p for i, p in enumerate(patch)}
    data = tokens[batch.data_mask.to(tokens.device)]  # (ΣN_b, P') sample by sample, raster order
    counts = [math.prod(_patch_grid(shape, patch)) for shape in batch.shapes]
    out = []
    for chunk, shape in zip(data.split(counts), batch.shapes, strict=True):
        sizes = dict(zip(_AXIS_NAMES[n_axes], _patch_grid(shape, patch), strict=True))
        out.append(rearrange(chunk, _UNPATCHIFY[n_axes], **sizes, **kwargs))  # (C', *grid)
    return out


def unpack_stacked(tokens: Tensor, batch: PackedBatch, channels: int | None = None) -> Tensor:
    """:func:`unpack` for a batch whose latents all share one size: one ``(B, C', *grid)`` tensor."""
    _check_unpack(tokens, batch, channels)
    if any(shape[1:] != batch.shapes[0][1:] for shape in batch.shapes):
        raise ValueError("unpack_stacked needs latents of one size; use unpack for mixed sizes")
    patch = batch.patch_size
    n_axes = len(patch)
    kwargs = {f"p{i + 1}": p for i, p in enumerate(patch)}
    sizes = dict(zip(_AXIS_NAMES[n_axes], _patch_grid(batch.shapes[0], patch), strict=True))
    data = tokens[batch.data_mask.to(tokens.device)]  # (B·N, P')
    data = data.view(len(batch.shapes), -1, data.shape[-1])  # (B, N, P')
    return rearrange(data, _batched(_UNPATCHIFY[n_axes]), **sizes, **kwargs)  # (B, C', *grid)


def grid_mask_to_tokens(masks: Sequence[Tensor], batch: PackedBatch) -> Tensor:
    """Map per-sample boolean masks over the latent grid to a ``(B, L)`` token mask.

    A data token is marked when *every* latent cell of its patch is marked
    (so a held patch never carries unmarked content); placeholders and padding
    are never marked. Used to mark conditioning frames / spans / voxels.
    """
    rows = []
    for m, shape in zip(masks, batch.shapes, strict=True):
        if tuple(m.shape) != tuple(shape[1:]):
            raise ValueError(f"mask shape {tuple(m.shape)} != latent grid {tuple(shape[1:])}")
        rows.append(m.to(torch.float32).unsqueeze(0))  # (1, *grid)
    packed = pack(rows, batch.patch_size)  # tokens (B, L, prod(patch))
    full = packed.tokens.min(dim=-1).values > 0.5  # (B, L)
    return full & packed.data_mask  # (B, L)
