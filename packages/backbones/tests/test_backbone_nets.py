"""Behaviour of the Flag-DiT and MMDiT backbones and their building blocks (tiny sizes, CPU)."""

import json

import pytest
import torch
from unidit.backbones.attention import AttentionMask, drop_padding_columns, key_padding_mask, masked_attention
from unidit.backbones.build import build_backbone, load_backbone
from unidit.backbones.config import PRESETS, BackboneConfig, backbone_config
from unidit.backbones.flag_dit import FlagDiT
from unidit.backbones.mmdit import MMDiT
from unidit.backbones.norms import RMSNorm, rms_norm
from unidit.backbones.rope import AxialRoPE, apply_rope, rotate_pairs_complex, rotate_pairs_real
from unidit.backbones.slots import DATA, NEXTLINE, PAD

ARCHS = ["flag_dit", "mmdit"]
CONTEXT_DIM = 384
# parameters that are zero at init so that a fresh Flag-DiT ignores the text
TEXT_GATES = ("cross_attn.gate", "condition.pooled.1")


def grid_inputs(batch: int = 2, rows: int = 3, cols: int = 3, dim: int = 64, seed: int = 0) -> dict:
    """A (rows x cols) image-like layout with a NEXTLINE after every row, plus a masked text context."""
    g = torch.Generator().manual_seed(seed)
    kinds, positions = [], []
    for r in range(rows):
        for c in range(cols + 1):
            kinds.append(NEXTLINE if c == cols else DATA)
            positions.append((0, r, c))
    length = len(kinds)
    context_mask = torch.ones(batch, 5, dtype=torch.bool)
    context_mask[1:, 3:] = False
    return {
        "x": torch.randn(batch, length, dim, generator=g),
        "t": torch.rand(batch, generator=g),
        "positions": torch.tensor(positions).expand(batch, length, 3).clone(),
        "slot_kind": torch.tensor(kinds).expand(batch, length).clone(),
        "key_mask": torch.ones(batch, length, dtype=torch.bool),
        "context": torch.randn(batch, 5, CONTEXT_DIM, generator=g),
        "context_mask": context_mask,
    }


def perturb(model: torch.nn.Module, std: float = 0.05, skip: tuple[str, ...] = (), seed: int = 1) -> torch.nn.Module:
    """Add noise to every parameter (stand-in for a trained model), except names containing ``skip``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(s in name for s in skip):
                p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def trained(arch: str = "flag_dit", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return perturb(build_backbone(backbone_config("tiny", arch=arch, **overrides))).eval()


# ---------------------------------------------------------------- zero-init text path (Flag-DiT)


@pytest.mark.parametrize("pretrained", [False, True])
def test_flag_dit_without_trained_gates_ignores_context_exactly(pretrained):
    torch.manual_seed(0)
    model = build_backbone(backbone_config("tiny")).eval()
    if pretrained:  # an unconditional model whose text gates have not been trained yet
        perturb(model, skip=TEXT_GATES)
    inp = grid_inputs()
    base = {k: v for k, v in inp.items() if not k.startswith("context")}
    out_none = model(**base)
    out_a = model(**inp)
    out_b = model(**{**inp, "context": torch.randn_like(inp["context"]), "context_mask": None})
    assert torch.equal(out_none, out_a)
    assert torch.equal(out_none, out_b)


def test_flag_dit_gate_learns_to_use_context():
    torch.manual_seed(0)
    model = perturb(build_backbone(backbone_config("tiny")), skip=TEXT_GATES)
    inp = grid_inputs()
    target = inp["context"].mean(dim=1, keepdim=True)[..., :64]  # (B, 1, D): depends on the text
    loss = (model(**inp) - target).square().mean()
    loss.backward()
    with torch.no_grad():  # one step of Adam is lr * sign(grad); spelled out to skip torch.optim's import cost
        for p in model.parameters():
            p.sub_(1e-2 * p.grad.sign())
    assert any(blk.cross_attn.gate.abs().sum() > 0 for blk in model.blocks)
    model.eval()
    with torch.no_grad():
        out_a = model(**inp)
        out_b = model(**{**inp, "context": torch.randn_like(inp["context"])})
    assert not torch.allclose(out_a, out_b)


# ---------------------------------------------------------------- per-token timesteps


@pytest.mark.parametrize("arch", ARCHS)
def test_per_token_timesteps_drive_adaln(arch):
    model = trained(arch)
    inp = grid_inputs()
    batch, length = inp["slot_kind"].shape
    with torch.no_grad():
        out_sample = model(**inp)
        t_tok = inp["t"][:, None].expand(batch, length).clone()
        out_token = model(**{**inp, "t": t_tok})
        torch.testing.assert_close(out_token, out_sample, atol=1e-5, rtol=1e-5)
        t_tok[0, 4] = 0.0  # hold token 4 of sample 0 as clean conditioning
        out_changed = model(**{**inp, "t": t_tok})
    assert not torch.allclose(out_changed[0, 4], out_sample[0, 4], atol=1e-4)
    torch.testing.assert_close(out_changed[1], out_sample[1])  # other samples untouched


# ---------------------------------------------------------------- padding and placeholders


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_padding_does_not_change_real_slots(arch, window):
    overrides = {"window_size": 2, "window_blocks": (0,)} if window else {}
    model = trained(arch, **overrides)
    inp = grid_inputs()
    batch, length = inp["slot_kind"].shape
    pad = 3
    padded = dict(inp)
    padded["x"] = torch.cat([inp["x"], torch.randn(batch, pad, 64) * 100], dim=1)
    padded["t"] = torch.cat([inp["t"][:, None].expand(batch, length), torch.rand(batch, pad)], dim=1)
    padded["positions"] = torch.cat([inp["positions"], torch.randint(0, 5, (batch, pad, 3))], dim=1)
    padded["slot_kind"] = torch.cat([inp["slot_kind"], torch.full((batch, pad), PAD)], dim=1)
    padded["key_mask"] = torch.cat([inp["key_mask"], torch.zeros(batch, pad, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        out = model(**inp)
        out_padded = model(**padded)
    torch.testing.assert_close(out_padded[:, :length], out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_fully_masked_sample_and_context_stay_finite(arch):
    model = trained(arch)
    inp = grid_inputs()
    inp["key_mask"][1] = False
    inp["context_mask"][1] = False
    out = model(**inp)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("arch", ARCHS)
def test_placeholder_slots_use_learned_embeddings(arch):
    model = trained(arch)
    inp = grid_inputs()
    is_line = inp["slot_kind"] == NEXTLINE
    other_x = torch.where(is_line[..., None], torch.randn_like(inp["x"]), inp["x"])
    with torch.no_grad():
        out = model(**inp)
        assert torch.equal(model(**{**inp, "x": other_x}), out)
        model.placeholders.nextline.add_(1.0)
        assert not torch.allclose(model(**inp), out)


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_round_trip(arch, tmp_path):
    model = trained(arch, rope_axes=(4, 4, 8), window_size=2, window_blocks=(1,), num_modalities=3)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["arch"] == arch and saved["window_blocks"] == [1]
    loaded = load_backbone(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    reference = dict(model.named_parameters())
    for name, p in loaded.named_parameters():
        assert torch.equal(p, reference[name]), name
    direct = (FlagDiT if arch == "flag_dit" else MMDiT).from_pretrained(tmp_path).eval()
    inp = grid_inputs()
    modality = torch.tensor([0, 2])
    with torch.no_grad():
        out = model(**inp, modality=modality)
        assert torch.equal(loaded(**inp, modality=modality), out)
        assert torch.equal(direct(**inp, modality=modality), out)


# ---------------------------------------------------------------- MMDiT training details, autocast


def test_mmdit_forward_backward_with_masked_context_and_checkpointing():
    inp = grid_inputs()
    t_tok = torch.rand(inp["slot_kind"].shape)
    plain = trained("mmdit").train()
    ckpt = trained("mmdit", gradient_checkpointing=True).train()
    outs, grads = [], []
    for model in (plain, ckpt):
        out = model(**{**inp, "t": t_tok})
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1])
    for name, grad in grads[0].items():
        assert grad is not None, f"{name} has no gradient"
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_bf16_autocast_runs(arch):
    model = trained(arch, window_size=2, window_blocks=(0,)).train()
    inp = grid_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inp)
    assert out.shape == inp["x"].shape and torch.isfinite(out).all()
    out.float().square().mean().backward()


# ---------------------------------------------------------------- window attention (DiT-3D)


@pytest.mark.parametrize("arch", ARCHS)
def test_window_blocks_keep_windows_apart(arch):
    model = trained(arch, window_size=2, window_blocks=(0, 1))
    inp = grid_inputs(rows=4, cols=4)
    if arch == "mmdit":  # text tokens see every window, so only the latent-only path is window-local
        inp["context"] = inp["context_mask"] = None
    rows, cols = inp["positions"][0, :, 1], inp["positions"][0, :, 2]
    first_window = (rows < 2) & (cols < 2)  # (L,)
    far = int(((rows >= 2) & (cols >= 2) & (cols < 4)).nonzero()[0])
    near = int(first_window.nonzero()[-1])
    with torch.no_grad():
        out = model(**inp)
        x_far = inp["x"].clone()
        x_far[:, far] += 1.0
        out_far = model(**{**inp, "x": x_far})
        x_near = inp["x"].clone()
        x_near[:, near] += 1.0
        out_near = model(**{**inp, "x": x_near})
    torch.testing.assert_close(out_far[:, first_window], out[:, first_window], atol=1e-6, rtol=0)
    assert not torch.allclose(out_near[:, first_window], out[:, first_window])


# ---------------------------------------------------------------- configs, presets, blocks


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build(preset, arch):
    config = backbone_config(preset, arch=arch)
    with torch.device("meta"):  # no memory, no time: shapes and wiring only
        model = build_backbone(config)
    assert model.config.dim == PRESETS[preset]["dim"]
    assert len(model.blocks) == PRESETS[preset]["depth"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"arch": "unet"}, "arch"),
        ({"dim": 66}, "dim"),
        ({"num_heads": 64}, "num_heads"),  # head_dim 1 is odd
        ({"rope_axes": (4, 4, 4)}, "rope_axes"),
        ({"window_blocks": (0,)}, "window_size"),
        ({"window_size": 2, "window_blocks": (7,)}, "window_blocks"),
        ({"num_modalities": -1}, "num_modalities"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        backbone_config("tiny", **overrides)


def test_config_lists_become_tuples_and_unknown_preset_lists_presets():
    config = BackboneConfig(dim=64, num_heads=4, rope_axes=[4, 4, 8], window_size=2, window_blocks=[0, 1])
    assert config.rope_axes == (4, 4, 8) and config.window_blocks == (0, 1)
    with pytest.raises(ValueError, match="tiny"):
        backbone_config("huge")
    with pytest.raises(ValueError, match="arch"):
        MMDiT(BackboneConfig())


def test_rope_origin_is_identity_and_scores_are_relative():
    rope = AxialRoPE(16, axes=(4, 4, 8))
    q, k = torch.randn(2, 1, 2, 5, 16).unbind(0)  # (B, H, L, Dh) each
    zero = torch.zeros(1, 5, 3, dtype=torch.long)
    assert torch.equal(apply_rope(q, rope(zero)), q)
    pos = torch.randint(0, 8, (1, 5, 3))
    shift = torch.tensor([3, 1, 2])
    scores = apply_rope(q, rope(pos)) @ apply_rope(k, rope(pos)).transpose(-1, -2)
    shifted = apply_rope(q, rope(pos + shift)) @ apply_rope(k, rope(pos + shift)).transpose(-1, -2)
    torch.testing.assert_close(shifted, scores, atol=1e-4, rtol=1e-4)


def test_rope_rotates_each_channel_pair_by_its_angle():
    rope = AxialRoPE(12, theta=100.0, axes=(4, 4, 4))
    pos = torch.randint(0, 9, (2, 7, 3))
    x = torch.randn(2, 3, 7, 12, dtype=torch.float64)
    angles = pos.double()[..., rope.axis_of] * rope.freqs.double()  # (B, L, Dh/2)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, L, Dh/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    expected = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    torch.testing.assert_close(apply_rope(x, rope(pos)), expected, atol=1e-5, rtol=1e-5)
    for rotate in (rotate_pairs_complex, rotate_pairs_real):  # eager and torch.compile paths
        torch.testing.assert_close(rotate(x, rope(pos)), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("affine", [False, True])
def test_cpu_rms_norm_matches_torch_in_value_and_gradient(affine):
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, dtype=torch.float64, requires_grad=True) if affine else None
    expected = torch.nn.functional.rms_norm(x, (16,), weight, 1e-6)
    torch.testing.assert_close(rms_norm(x, weight, 1e-6), expected)
    inputs = (x, weight) if affine else (x,)
    assert torch.autograd.gradcheck(lambda *a: rms_norm(a[0], a[1] if affine else None, 1e-6), inputs)
    norm = RMSNorm(16).to(torch.bfloat16)
    assert norm(torch.randn(2, 16, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_no_padding_means_no_mask_so_sdpa_can_use_fused_kernels():
    assert key_padding_mask(torch.ones(2, 7, dtype=torch.bool)) is None
    mask = key_padding_mask(torch.tensor([[True, True], [True, False]]))
    assert mask is not None and mask.allowed.shape == (2, 1, 1, 2)


def test_drop_padding_columns_keeps_used_positions_and_one_column_when_all_empty():
    context = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[True, False, True, False], [True, False, False, False]])
    kept, kept_mask = drop_padding_columns(context, mask)
    assert torch.equal(kept[..., 0], torch.tensor([[0.0, 2.0], [4.0, 6.0]]))
    assert torch.equal(kept_mask, torch.tensor([[True, True], [True, False]]))
    empty, empty_mask = drop_padding_columns(context, torch.zeros(2, 4, dtype=torch.bool))
    assert empty.shape == (2, 1, 1) and not empty_mask.any()


@pytest.mark.parametrize("arch", ARCHS)
def test_padding_columns_unused_by_every_row_change_nothing(arch):
    """Dynamic padding: extra all-padding text positions (as a longer max length would add) are exact no-ops."""
    model = trained(arch)  # perturbed: the zero-init text gates are open
    inputs = grid_inputs()
    g = torch.Generator().manual_seed(5)
    longer = dict(inputs)
    longer["context"] = torch.cat([inputs["context"], torch.randn(2, 3, CONTEXT_DIM, generator=g)], dim=1)
    longer["context_mask"] = torch.cat([inputs["context_mask"], torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(**longer), model(**inputs), atol=1e-5, rtol=1e-5)
        empty = dict(inputs, context_mask=torch.zeros(2, 5, dtype=torch.bool))
        assert torch.isfinite(model(**empty)).all()


def test_attention_rows_without_keys_return_zeros():
    q, k, v = torch.randn(3, 2, 2, 4, 8).unbind(0)  # (B, H, L, Dh) each
    key_mask = torch.tensor([[True, False, True, False], [False] * 4])
    mask = AttentionMask.from_bool(key_mask[:, None, None, :])
    out = masked_attention(q, k, v, mask)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.isfinite(out).all()
