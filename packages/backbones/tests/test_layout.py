"""The layout (Lumina-T2X nextline/nextframe packing) is exact and invertible."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from unidit.backbones.layout import grid_mask_to_tokens, layout_length, pack, unpack
from unidit.backbones.slots import DATA, NEXTFRAME, NEXTLINE, PAD


@st.composite
def batches(draw):
    """A batch of latents sharing channels and axis count, with random grids and patches."""
    n_axes = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 3))
    patch = tuple(draw(st.integers(1, 3)) for _ in range(n_axes))
    n_samples = draw(st.integers(1, 4))
    grids = [tuple(draw(st.integers(1, 4)) * p for p in patch) for _ in range(n_samples)]
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    latents = [torch.randn(channels, *g, generator=gen) for g in grids]
    uniform_patch = draw(st.booleans()) and len(set(patch)) == 1
    return latents, (patch[0] if uniform_patch else patch)


@settings(max_examples=80, deadline=None)
@given(batches(), st.integers(1, 4))
def test_pack_unpack_is_identity(sample, out_channels):
    latents, patch = sample
    batch = pack(latents, patch)
    n_axes = latents[0].dim() - 1
    patch_t = batch.patch_size
    assert len(patch_t) == n_axes

    restored = unpack(batch.tokens, batch)
    for z, r in zip(latents, restored, strict=True):
        assert torch.equal(z, r)

    # Slot counts, lengths and padding per sample.
    for b, z in enumerate(latents):
        grid = [s // p for s, p in zip(z.shape[1:], patch_t, strict=True)]
        f, h, w = [1] * (3 - n_axes) + grid
        kinds = batch.slot_kind[b]
        n = layout_length(z.shape, patch)
        assert int(batch.key_mask[b].sum()) == n
        assert (kinds[n:] == PAD).all() and (kinds[:n] != PAD).all()
        assert int((kinds == DATA).sum()) == f * h * w
        assert int((kinds == NEXTLINE).sum()) == (f * h if n_axes >= 2 else 0)
        assert int((kinds == NEXTFRAME).sum()) == (f if n_axes == 3 else 0)
        # Placeholders and padding carry zero vectors.
        assert (batch.tokens[b][~batch.data_mask[b]] == 0).all()
        # Data positions enumerate the patch grid in raster order.
        pos = batch.positions[b][batch.data_mask[b]]
        expected = torch.stack(
            torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij"), -1
        ).reshape(-1, 3)
        assert torch.equal(pos, expected)
    assert batch.tokens.shape[1] == max(layout_length(z.shape, patch) for z in latents)

    # A head may emit a different channel count per patch.
    other = [torch.randn(out_channels, *z.shape[1:]) for z in latents]
    other_batch = pack(other, patch)
    assert other_batch.tokens.shape[-1] == out_channels * math.prod(patch_t)
    for o, r in zip(other, unpack(other_batch.tokens, batch, channels=out_channels), strict=True):
        assert torch.equal(o, r)


def test_video_hand_worked_example():
    # (C=1, F=2, H=2, W=3), patch 1: each frame is
    #   D D D NL / D D D NL / NF  -> 9 slots, 18 in all.
    z = torch.arange(12.0).reshape(1, 2, 2, 3)
    batch = pack([z], 1)
    d, nl, nf = DATA, NEXTLINE, NEXTFRAME
    frame_kinds = [d, d, d, nl, d, d, d, nl, nf]
    assert batch.slot_kind[0].tolist() == frame_kinds * 2
    frame = [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),  # row 0, its NEXTLINE just past it at col W' = 3
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),  # NEXTFRAME just past the last row, at row H' = 2, col 0
    ]
    expected = [(f, r, c) for f in range(2) for r, c in frame]
    assert [tuple(p) for p in batch.positions[0].tolist()] == expected
    data = batch.tokens[0, batch.data_mask[0], 0]
    assert data.tolist() == list(range(12))
    assert layout_length(z.shape, 1) == 18


def test_image_and_audio_examples():
    img = torch.arange(4.0).reshape(1, 2, 2)
    batch = pack([img], (1, 1))
    assert batch.slot_kind[0].tolist() == [DATA, DATA, NEXTLINE, DATA, DATA, NEXTLINE]
    assert [tuple(p) for p in batch.positions[0].tolist()] == [
        (0, 0, 0),
        (0, 0, 1),
        (0, 0, 2),
        (0, 1, 0),
        (0, 1, 1),
        (0, 1, 2),
    ]
    audio = torch.randn(3, 8)
    batch = pack([audio], 2)
    assert (batch.slot_kind == DATA).all() and batch.tokens.shape == (1, 4, 6)
    assert batch.positions[0].tolist() == [[0, 0, t] for t in range(4)]


def test_patch_vector_order_is_c_then_patch_axes():
    z = torch.arange(16.0).reshape(2, 2, 4)  # (C, H, W)
    batch = pack([z], (1, 2))
    first = batch.tokens[0, 0].tolist()
    assert first == [z[0, 0, 0], z[0, 0, 1], z[1, 0, 0], z[1, 0, 1]]


def test_mixed_sizes_pad_right():
    small, big = torch.randn(2, 2, 2), torch.randn(2, 4, 4)
    batch = pack([small, big], 2)
    # small: 1x1 patches + 1 NEXTLINE = 2 slots; big: 2x(2+1) = 6 slots.
    assert batch.tokens.shape == (2, 6, 8)
    assert batch.key_mask.sum(1).tolist() == [2, 6]
    assert batch.slot_kind[0, 2:].eq(PAD).all()


def test_indivisible_axis_names_axis_size_and_patch():
    with pytest.raises(ValueError, match=r"axis 1 \(w\) has size 5.*patch size 2"):
        pack([torch.randn(1, 4, 5)], 2)
    with pytest.raises(ValueError, match="channels"):
        pack([torch.randn(1, 4, 4), torch.randn(2, 4, 4)], 2)


def test_unpack_checks_width():
    batch = pack([torch.randn(2, 4, 4)], 2)
    with pytest.raises(ValueError, match="token width"):
        unpack(torch.zeros(1, batch.tokens.shape[1], 7), batch)


def test_grid_mask_marks_whole_patches_only():
    z = torch.randn(1, 4, 2, 2)  # (C, F, H, W); condition on the first two frames
    mask = torch.zeros(4, 2, 2, dtype=torch.bool)
    mask[:2] = True
    batch = pack([z], (2, 1, 1))
    tok = grid_mask_to_tokens([mask], batch)
    assert tok.shape == batch.slot_kind.shape
    assert tok[0].tolist() == [True, True, False, True, True, False, False] + [False] * 7
    mask[1] = False  # now only half of the first temporal patch is marked
    assert not grid_mask_to_tokens([mask], batch).any()
