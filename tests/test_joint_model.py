"""Joint multi-task training on one backbone: mixed varlen batches, losses, resume, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from unidit.apps.joint.export import export_joint
from unidit.apps.joint.task import JointTask, parse_tasks
from unidit.apps.task_app import joint_part
from unidit.tasks.t2a.datamodule import collate_latent_clips
from unidit.tasks.t2a.denoiser import PAD_TIME
from unidit.training.joint.mixing import MixedSteps, mixing_probabilities, step_counts, step_generator

TASK_OPTIONS = {
    "shape3d": {"resolution": 8, "patch_size": 4, "grid_channels": 8, "point_hidden": 16},
    "t2a": {"latent_channels": 4, "patch_size": 2},
    "t2v": {"latent_channels": 4, "latent_height": 4, "latent_width": 4},
    "motion": {"codebook_size": 16, "max_tokens": 8},
}
CAPTIONS = ["a red cube", "a low hum", "a ball moving left", "a tall cone", "rain on a roof"]


def tiny_joint(tasks: str = "shape3d,t2a,t2v", **options) -> JointTask:
    torch.manual_seed(0)
    names = parse_tasks(tasks)
    return JointTask(tasks=tasks, task_options={n: TASK_OPTIONS[n] for n in names}, preset="tiny",
                     warmup_steps=1, **options)


def task_batches(seed: int = 0) -> dict[str, dict]:
    """One small batch per task in each task's own batch format (clouds, audio latents of two lengths, clips)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "shape3d": {"points": torch.nn.functional.normalize(torch.randn(2, 64, 3, generator=g), dim=-1) * 0.8,
                    "caption": CAPTIONS[:2]},  # two spheres
        "t2a": {"latents": [torch.randn(4, 12, generator=g), torch.randn(4, 8, generator=g)],
                "captions": CAPTIONS[1:3]},
        "t2v": {"latents": torch.randn(2, 4, 2, 4, 4, generator=g), "caption": CAPTIONS[2:4]},
    }


def test_mixed_varlen_batch_matches_each_task_alone():
    """One varlen row of clouds, padded audio and clips == each task's denoiser on its own batch.

    Outputs and every parameter gradient agree to 1e-5 (relative to the tensor's scale): the
    varlen row only reorders float sums (SDPA per length group instead of a padded batch).
    """
    joint = tiny_joint()
    for p in joint.denoiser.parameters():  # leave the zero init so every part (and its gradient) is non-trivial
        if p.dim() >= 1:
            torch.nn.init.normal_(p, std=0.05)
    joint.train()
    g = torch.Generator().manual_seed(1)
    batches = task_batches()
    inputs = {}
    for name in joint.task_names:
        flow_in = joint.subtasks[name].flow_inputs(batches[name])
        x = torch.randn(flow_in.x0.shape, generator=g)
        t = torch.rand(x.shape[0], generator=g)
        if name == "t2a":  # padded audio: PAD slots carry PAD_TIME, as in training
            t = torch.where(flow_in.mask, t[:, None], torch.full(flow_in.mask.shape, PAD_TIME))
        context, context_mask = joint.encode_captions(flow_in.captions)
        inputs[name] = (x, t, context, context_mask)
    weights = {name: torch.randn(inputs[name][0].shape, generator=g) for name in inputs}
    params = [p for p in joint.denoiser.parameters() if p.requires_grad]

    mixed = joint.denoiser.forward_mixed(inputs)
    mixed_grads = torch.autograd.grad(sum((mixed[n] * weights[n]).sum() for n in mixed), params)
    alone = {n: joint.denoiser(n, *inputs[n]) for n in inputs}
    alone_grads = torch.autograd.grad(sum((alone[n] * weights[n]).sum() for n in alone), params)

    assert len(set(map(id, params))) == len(params)
    for name in inputs:
        assert mixed[name].shape == alone[name].shape
        scale = alone[name].abs().max()
        assert scale > 0
        torch.testing.assert_close(mixed[name], alone[name], atol=1e-5 * float(scale.detach()), rtol=1e-5)
    for p, a, b in zip(params, mixed_grads, alone_grads):
        torch.testing.assert_close(a, b, atol=1e-5 * max(float(b.abs().max()), 1e-3), rtol=1e-4)
    nonzero = sum(int(b.abs().max() > 0) for b in alone_grads)
    assert nonzero == len(params)


def test_tasks_draw_their_training_conditioning_in_training_mode_only():
    """Lightning switches modes by setting ``.training`` on modules (not through ``train()``): the
    tasks inside follow the joint module's flag, so every step of a joint run trains image-to-video,
    extension, completion and inpainting as often as a single-task run does, and validation does not."""
    joint = tiny_joint(caption_dropout=0.0)
    joint.subtasks["t2v"].first_frame_prob, joint.subtasks["t2v"].prefix_prob = 1.0, 0.0  # every clip holds frame 0
    batches, calls = task_batches(), []
    original = joint.subtasks["t2v"]._random_held_frames
    joint.subtasks["t2v"]._random_held_frames = lambda *a: calls.append(a) or original(*a)
    for mode in (True, False, True):
        joint.training = mode  # as Lightning's _ModuleMode.restore does
        calls.clear()
        joint.joint_losses(batches)
        assert all(sub.training is mode for sub in joint.subtasks.values())
        assert len(calls) == int(mode)


def test_one_backbone_is_shared_and_smaller_than_separate_ones():
    joint = tiny_joint()
    backbones = {id(joint.denoiser.part(n).backbone) for n in joint.task_names}
    assert len(backbones) == 1
    separate = sum(p.numel() for n in joint.task_names for p in joint.denoiser.part(n).parameters())
    total = sum(p.numel() for p in joint.denoiser.parameters())
    backbone = sum(p.numel() for p in joint.denoiser.backbone.parameters())
    assert total == separate - (len(joint.task_names) - 1) * backbone
    assert [joint.denoiser.part(n).modality for n in joint.task_names] == [0, 1, 2]


def test_loss_falls_for_every_task():
    """60 AdamW steps on mixed batches: every task's loss, on fixed draws, ends well below where it started."""
    joint = tiny_joint(lr=3e-3, caption_dropout=0.0)
    joint.train()
    optimizer = torch.optim.AdamW(joint.denoiser.parameters(), lr=3e-3)
    batch = task_batches()

    def fixed_losses() -> dict[str, float]:
        state = torch.random.get_rng_state()
        torch.manual_seed(123)
        with torch.no_grad():
            losses = {}
            for _ in range(4):
                for name, value in joint.joint_losses(batch, drop=False).items():
                    losses[name] = losses.get(name, 0.0) + float(value.mean()) / 4
        torch.random.set_rng_state(state)
        return losses

    before = fixed_losses()
    torch.manual_seed(0)
    for _ in range(60):
        loss = sum(errors.mean() for errors in joint.joint_losses(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_losses()
    assert set(before) == {"shape3d", "t2a", "t2v"}
    for name in before:
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])


def test_mixing_ratio_fixed_weights_and_temperature():
    sizes = {"shape3d": 400, "t2a": 100, "t2v": 25}
    assert mixing_probabilities(sizes) == pytest.approx({"shape3d": 1 / 3, "t2a": 1 / 3, "t2v": 1 / 3})
    proportional = mixing_probabilities(sizes, temperature=1.0)
    assert proportional["shape3d"] == pytest.approx(400 / 525)
    flatter = mixing_probabilities(sizes, temperature=2.0)  # p ∝ sqrt(n): 20 : 10 : 5
    assert flatter == pytest.approx({"shape3d": 20 / 35, "t2a": 10 / 35, "t2v": 5 / 35})
    fixed = mixing_probabilities(sizes, weights={"shape3d": 1, "t2a": 1, "t2v": 2}, temperature=3.0)
    assert fixed["t2v"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="missing for \\['t2v'\\]"):
        mixing_probabilities(sizes, weights={"shape3d": 1, "t2a": 1})
    # the draw of a step is a pure function of (seed, step), and follows the ratio
    counts = [step_counts(flatter, 32, step_generator(0, s)) for s in range(200)]
    assert counts[7] == step_counts(flatter, 32, step_generator(0, 7))
    assert all(sum(c.values()) == 32 and min(c.values()) >= 1 for c in counts)
    share = sum(c["shape3d"] for c in counts) / (32 * 200)
    assert abs(share - (1 + 29 * 20 / 35) / 32) < 0.02


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task.*'tts'.*shape3d, t2a, t2v"):
        parse_tasks("shape3d,tts")
    joint = tiny_joint("shape3d,t2a")
    with pytest.raises(ValueError, match="'t2v' is not part of this joint model; it has shape3d, t2a"):
        joint.denoiser.part("t2v")


def _tiny_steps(names: list[str], steps: int = 4, seed: int = 0) -> MixedSteps:
    g = torch.Generator().manual_seed(seed)
    datasets = {
        "shape3d": [{"points": torch.rand(64, 3, generator=g) * 2 - 1, "caption": CAPTIONS[i % 5]} for i in range(6)],
        "t2a": [{"latent": torch.randn(4, 8 + 2 * (i % 3), generator=g), "caption": CAPTIONS[i % 5]}
                for i in range(6)],
        "t2v": [{"latents": torch.randn(4, 2, 4, 4, generator=g), "caption": CAPTIONS[i % 5]} for i in range(6)],
    }
    collates = {"shape3d": torch.utils.data.default_collate, "t2a": collate_latent_clips,
                "t2v": torch.utils.data.default_collate}
    sizes = {n: len(datasets[n]) for n in names}
    return MixedSteps({n: datasets[n] for n in names}, {n: collates[n] for n in names},
                      mixing_probabilities(sizes), batch_size=5, steps=steps, seed=seed)


def test_joint_checkpoint_serves_every_task(tmp_path):
    """Export a joint model; each task's own loader reads its part, and its sampler runs from it."""
    from unidit.apps.shape3d.app import APP as SHAPE3D
    from unidit.apps.t2a.app import APP as T2A

    joint = tiny_joint("shape3d,t2a")
    joint.ensure_ema()
    for p in joint.ema.network.parameters():  # a non-trivial EMA so the comparison means something
        p.data.normal_(std=0.05)
    model = export_joint(joint, tmp_path / "model")
    meta = json.loads((model / "joint.json").read_text())
    assert meta["tasks"] == ["shape3d", "t2a"]
    assert (model / "backbone" / "model.safetensors").is_file()

    shape = SHAPE3D.load_checkpoint(model)
    assert shape.denoiser.modality == 0 and shape.sampling_network().modality == 0
    torch.manual_seed(0)
    x, t = torch.rand(1, 64, 3), torch.tensor([0.5])
    ctx, mask = joint.encode_captions(["a red cube"])
    expected = joint.ema.network("shape3d", x, t, ctx, mask)
    torch.testing.assert_close(shape.sampling_network()(x, t, ctx, mask), expected)
    from unidit.training.sampling import SamplingOptions
    clouds = shape.sample_clouds(["a red cube"], 64, options=SamplingOptions(steps=2, cfg_scale=1.0))
    assert clouds.shape == (1, 64, 3) and torch.isfinite(clouds).all()

    with pytest.raises(ValueError, match="joint checkpoint of the tasks shape3d, t2a; it has no 't2v' part"):
        joint_part(model, "t2v")
    assert T2A.load_checkpoint.__func__ is SHAPE3D.load_checkpoint.__func__


def motion_batch(seed: int = 0) -> dict:
    """Two code sequences of different lengths (motion's collated batch: a list of code tensors and captions)."""
    g = torch.Generator().manual_seed(seed)
    return {"codes": [torch.randint(16, (6,), generator=g), torch.randint(16, (4,), generator=g)],
            "captions": ["a person walks forward", "a person waves twice"]}


def test_motion_codes_join_the_mixed_row_and_learn():
    """A discrete task in the joint run: masked motion codes go in the same varlen row as point
    clouds, the motion part's logits there equal its logits alone (PAD positions excluded), and in
    40 joint steps both the velocity loss and the masked-code cross-entropy fall."""
    joint = tiny_joint("shape3d,motion", lr=3e-3, caption_dropout=0.0)
    joint.subtasks["motion"].set_code_counts(torch.arange(1, 17).float())  # the priority schedule's statistics
    for p in joint.denoiser.parameters():
        if p.dim() >= 1:
            torch.nn.init.normal_(p, std=0.05)
    batch = {"shape3d": task_batches()["shape3d"], "motion": motion_batch()}
    joint.train()
    torch.manual_seed(0)
    sub, part = joint.subtasks["motion"], joint.denoiser.part("motion")
    token_in = sub.token_inputs(batch["motion"])
    t, tokens, masked = sub.objective(part).draw(token_in.codes, token_in.valid)
    assert masked.any() and not (masked & ~token_in.valid).any()
    context, context_mask = joint.encode_captions(token_in.captions)
    flow_in = joint.subtasks["shape3d"].flow_inputs(batch["shape3d"])
    shape_ctx, shape_mask = joint.encode_captions(flow_in.captions)
    x = torch.randn(flow_in.x0.shape)
    inputs = {"shape3d": (x, torch.rand(2), shape_ctx, shape_mask),
              "motion": (tokens, t, context, context_mask, token_in.valid)}
    mixed = joint.denoiser.forward_mixed(inputs)
    alone = part(tokens, t, context, context_mask, token_in.valid)  # (B, L, K)
    assert mixed["motion"].shape == alone.shape == (2, 6, 16)
    valid = token_in.valid
    torch.testing.assert_close(mixed["motion"][valid], alone[valid], atol=1e-5, rtol=1e-5)

    def fixed_losses() -> dict[str, float]:
        state = torch.random.get_rng_state()
        torch.manual_seed(7)
        with torch.no_grad():
            losses = {n: float(v.mean()) for n, v in joint.joint_losses(batch, drop=False).items()}
        torch.random.set_rng_state(state)
        return losses

    optimizer = torch.optim.AdamW(joint.denoiser.parameters(), lr=3e-3)
    before = fixed_losses()
    for _ in range(40):
        loss = torch.cat(list(joint.joint_losses(batch).values())).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_losses()
    assert set(before) == {"shape3d", "motion"}
    for name in before:
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])
