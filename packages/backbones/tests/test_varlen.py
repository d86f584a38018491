"""Varlen packing: samples of different sizes end to end in one row give what each gives alone."""

import pytest
import torch
from unidit.backbones.build import build_backbone
from unidit.backbones.config import backbone_config
from unidit.backbones.layout import layout_length, pack, pack_varlen, unpack
from unidit.backbones.modulation import gated_residual, modulate
from unidit.backbones.slots import PAD
from unidit.backbones.varlen import VarlenRow, pad_context_columns

ARCHS = ["flag_dit", "mmdit"]
CONTEXT_DIM = 384
# (C, H, W) latents of three sizes; two share one, so a length group holds several samples
SHAPES = [(4, 4, 6), (4, 8, 8), (4, 4, 6), (4, 2, 4)]


def trained(arch: str, **overrides) -> torch.nn.Module:
    """A tiny backbone with every weight perturbed off its (partly zero) initialisation."""
    torch.manual_seed(0)
    model = build_backbone(backbone_config("tiny", arch=arch, num_modalities=3, **overrides))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latents = [torch.randn(*shape, generator=g) for shape in SHAPES]
    n = len(latents)
    context = torch.randn(n, 6, CONTEXT_DIM, generator=g)
    context_mask = torch.ones(n, 6, dtype=torch.bool)
    context_mask[1, 4:] = False  # captions of different lengths
    context_mask[3, 2:] = False
    return latents, torch.rand(n, generator=g), context, context_mask, torch.tensor([0, 2, 1, 0])


def embed(batch, dim: int) -> torch.Tensor:
    weight = torch.randn(batch.tokens.shape[-1], dim, generator=torch.Generator().manual_seed(5))
    return batch.tokens @ weight  # (B, L, dim)


def run_alone(model, latents, t, context, context_mask, modality, per_token: bool):
    """Each sample through the backbone on its own (batch of one): the reference."""
    outs = []
    for i, z in enumerate(latents):
        batch = pack([z], 2)
        ti = t[i : i + 1]
        if per_token:
            ti = per_token_t(batch, ti)
        ctx = None if context is None else context[i : i + 1]
        cmask = None if context is None else context_mask[i : i + 1]
        out = model(embed(batch, model.config.dim), ti, batch.positions, batch.slot_kind, batch.key_mask,
                     ctx, cmask, modality[i : i + 1])
        outs.append(out[0])
    return torch.cat(outs)  # (T, D), sample by sample


def per_token_t(batch, t_sample: torch.Tensor) -> torch.Tensor:
    """Per-token timesteps: the sample's t, with its first two slots held clean (t = 0)."""
    lengths = batch.lengths.tolist()
    t = torch.repeat_interleave(t_sample, torch.tensor(lengths))  # (T,) or per-row
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    for s in starts:
        t[s : s + 2] = 0.0
    return t.view(batch.slot_kind.shape) if batch.segment_lengths is not None else t[None]


def test_pack_varlen_round_trips_and_matches_pack_without_padding():
    latents = inputs()[0]
    padded, varlen = pack(latents, 2), pack_varlen(latents, 2)
    assert varlen.segment_lengths == [layout_length(z.shape, 2) for z in latents]
    assert varlen.tokens.shape[:2] == (1, sum(varlen.segment_lengths))
    assert not bool((varlen.slot_kind == PAD).any())
    keep = padded.key_mask
    assert torch.equal(varlen.tokens[0], padded.tokens[keep])
    assert torch.equal(varlen.positions[0], padded.positions[keep])
    for got, want in zip(unpack(varlen.tokens, varlen), latents, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", ["text", "per_token_t", "no_text"])
def test_varlen_row_equals_each_sample_alone(arch, case):
    model = trained(arch).eval()
    latents, t, context, context_mask, modality = inputs()
    if case == "no_text":
        context = context_mask = None
    varlen = pack_varlen(latents, 2)
    t_row = per_token_t(varlen, t) if case == "per_token_t" else t
    with torch.no_grad():
        got = model(embed(varlen, model.config.dim), t_row, varlen.positions, varlen.slot_kind, varlen.key_mask,
                    context, context_mask, modality, segment_lengths=varlen.segment_lengths)
        want = run_alone(model, latents, t, context, context_mask, modality, case == "per_token_t")
    assert got.shape == (1, want.shape[0], model.config.dim)
    torch.testing.assert_close(got[0], want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_varlen_gradients_equal_the_sum_over_samples(arch):
    """One backward through the packed row gives the gradients of the per-sample losses summed."""
    latents, t, context, context_mask, modality = inputs()
    varlen = pack_varlen(latents, 2)
    model = trained(arch).train()
    out = model(embed(varlen, model.config.dim), t, varlen.positions, varlen.slot_kind, varlen.key_mask,
                context, context_mask, modality, segment_lengths=varlen.segment_lengths)
    out.square().sum().backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    run_alone(model, latents, t, context, context_mask, modality, per_token=False).square().sum().backward()
    assert packed_grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        if p.grad is not None:
            error = (packed_grads[name] - p.grad).norm() / p.grad.norm().clamp(min=1e-12)
            assert error < 1e-5, f"{name}: relative gradient error {error:.2e}"


@pytest.mark.parametrize("arch", ARCHS)
def test_varlen_rejects_what_it_cannot_honour(arch):
    latents, t, context, context_mask, modality = inputs()
    varlen = pack_varlen(latents, 2)
    x = embed(varlen, 64)
    args = (varlen.positions, varlen.slot_kind)
    model = trained(arch).eval()
    with pytest.raises(ValueError, match="varlen row must be"):
        model(x, t, *args, varlen.key_mask, context, context_mask, modality,
              segment_lengths=[*varlen.segment_lengths[:-1], varlen.segment_lengths[-1] + 1])
    with pytest.raises(ValueError, match="PAD"):
        model(x, t, *args, torch.zeros_like(varlen.key_mask), context, context_mask, modality,
              segment_lengths=varlen.segment_lengths)
    with pytest.raises(ValueError, match="context_mask has 3 rows for 4"):
        model(x, t, *args, varlen.key_mask, context[:3], context_mask[:3], modality,
              segment_lengths=varlen.segment_lengths)
    windowed = trained(arch, window_size=2, window_blocks=(0,)).eval()
    with pytest.raises(ValueError, match="window attention"):
        windowed(x, t, *args, varlen.key_mask, context, context_mask, modality,
                 segment_lengths=varlen.segment_lengths)


@pytest.mark.parametrize("function", [modulate, gated_residual])
def test_per_sample_modulation_of_a_varlen_row_has_exact_gradients(function):
    """The segment forms (per-sample terms spread by an index) against gathering them onto the tokens."""
    g = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 0, 0, 2, 2, 1, 1, 1, 1])  # (T,) sample of each token, three samples

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)

    def spread(per_sample):  # (N, 1, D) -> (1, T, D)
        return per_sample[index].transpose(0, 1)

    x, per_sample = leaf(1, 9, 5), leaf(3, 1, 5)  # x; shift or gate
    if function is modulate:
        other = leaf(3, 1, 5)  # scale, per sample
        reference = modulate(x, spread(per_sample), spread(other))
    else:
        other = leaf(1, 9, 5)  # the update, per token
        reference = gated_residual(x, spread(per_sample), other)
    torch.testing.assert_close(function(x, per_sample, other, index), reference)
    assert torch.autograd.gradcheck(lambda *inputs: function(*inputs, index), (x, per_sample, other))


def test_length_classes_pad_samples_within_a_factor_of_two_into_one_attention_call():
    lengths = [5, 7, 30, 16, 70]
    row = VarlenRow(lengths, torch.device("cpu"), pad_multiple=16)
    groups = {g.length: g.samples.tolist() for g in row.groups}
    assert groups == {16: [0, 1, 3], 32: [2], 80: [4]}  # 5, 7, 16 -> 16; 30 -> 32; 70 -> 80
    exact = VarlenRow(lengths, torch.device("cpu"), pad_multiple=1, length_classes=False)
    assert {g.length: g.samples.tolist() for g in exact.groups} == {5: [0], 7: [1], 16: [3], 30: [2], 70: [4]}
    assert all(g.gather is None for g in exact.groups)
    with pytest.raises(ValueError, match="pad_multiple"):
        VarlenRow(lengths, torch.device("cpu"), pad_multiple=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16 takes the explicit-attention path
@pytest.mark.parametrize("kind", ["self", "cross", "joint", "joint_no_context_queries"])
def test_padded_attention_groups_give_the_exact_groups_outputs_and_gradients(kind, dtype):
    """Padding a length class to one length hides the pad slots: same outputs and gradients as no padding."""
    lengths, heads, dim, width = [5, 7, 30, 16, 70, 9], 2, 8, 6
    g = torch.Generator().manual_seed(0)
    total, n = sum(lengths), len(lengths)
    q, k, v = (torch.randn(1, heads, total, dim, generator=g) for _ in range(3))
    qc, kc, vc = (torch.randn(n, heads, width, dim, generator=g) for _ in range(3))
    context_mask = torch.ones(n, width, dtype=torch.bool)
    context_mask[1, 3:] = context_mask[4, 1:] = False

    def run(row: VarlenRow):
        leaves = [x.clone().to(dtype).requires_grad_() for x in (q, k, v, qc, kc, vc)]
        a, b, c, ac, bc, cc = leaves
        if kind == "self":
            outs = [row.self_attention(a, b, c)]
        elif kind == "cross":
            outs = [row.cross_attention(a, bc, cc)]
        else:
            latent, context = row.joint_attention(a, b, c, ac if kind == "joint" else None, bc, cc)
            outs = [latent] if context is None else [latent, context * context_mask[:, None, :, None]]
        loss = sum((o.float() * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum() for o in outs)
        loss.backward()
        return [o.detach().float() for o in outs], [x.grad.float() for x in leaves if x.grad is not None]

    padded = run(VarlenRow(lengths, torch.device("cpu"), context_mask, pad_multiple=16))
    exact = run(VarlenRow(lengths, torch.device("cpu"), context_mask, pad_multiple=1, length_classes=False))
    tolerance = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    for got, want in zip(padded[0] + padded[1], exact[0] + exact[1], strict=True):
        torch.testing.assert_close(got, want, **tolerance)


def test_pad_context_columns_rounds_the_text_up_to_a_multiple_and_masks_the_padding():
    context, mask = torch.randn(3, 5, 4), torch.ones(3, 5, dtype=torch.bool)
    padded, padded_mask = pad_context_columns(context, mask, 8)
    assert padded.shape == (3, 8, 4) and padded_mask.shape == (3, 8)
    assert torch.equal(padded[:, :5], context) and not padded_mask[:, 5:].any() and padded_mask[:, :5].all()
    same, same_mask = pad_context_columns(padded, padded_mask, 8)
    assert same is padded and same_mask is padded_mask
