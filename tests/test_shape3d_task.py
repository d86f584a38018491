"""The 3D task end to end on the tiny preset: training lowers the loss, completion keeps
the known points, exports round-trip bit-exactly."""

from __future__ import annotations

import torch
from unidit.tasks.shape3d.data import ShapeCloudDataset
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.training.export import export_task, load_task
from unidit.training.sampling import SamplingOptions


def _tiny_task(**overrides) -> Shape3DTask:
    torch.manual_seed(0)
    options = dict(preset="tiny", resolution=16, patch_size=4, grid_channels=8, point_hidden=32, lr=2e-3, warmup_steps=5)
    options.update(overrides)
    task = Shape3DTask(**options)
    task.setup("fit")
    return task


def _batch(shapes, size=16, start=0):
    dataset = ShapeCloudDataset(shapes)
    return torch.utils.data.default_collate([dataset[i] for i in range(start, start + size)])


def _fixed_loss(task, batch) -> float:
    """Flow loss on a batch with fixed timesteps and noise (comparable across training)."""
    inputs = task.flow_inputs(batch)
    context, mask = task.encode_captions(inputs.captions)
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return float(task.flow.loss(lambda x, t: task.denoiser(x, t, context, mask), inputs.x0, generator=generator))


def test_training_lowers_the_loss_on_embedded_shapes(small_shapes):
    task = _tiny_task(completion_prob=0.0, caption_dropout=0.0)
    held_out = _batch(small_shapes["val"], size=16)
    before = _fixed_loss(task.eval(), held_out)
    optimizer = torch.optim.AdamW(task.denoiser.parameters(), lr=2e-3)
    task.train()
    for step in range(40):
        batch = _batch(small_shapes["train"], size=16, start=(step * 16) % 48)
        loss = task.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _fixed_loss(task.eval(), held_out)
    assert after < 0.8 * before, (before, after)


def test_completion_keeps_known_points_bit_identical(small_shapes):
    task = _tiny_task().eval()
    known = torch.from_numpy(small_shapes["test"].points[:2, :300])  # (2, 300, 3)
    clouds = task.sample_clouds(["a large sphere", "a small cube"], 512, partial=known, options=SamplingOptions(steps=4, cfg_scale=2.0))
    assert clouds.shape == (2, 512, 3)
    assert torch.equal(clouds[:, :300], known)
    assert not torch.equal(clouds[:, 300:], torch.zeros_like(clouds[:, 300:]))


def test_export_round_trips_bit_exactly(tmp_path):
    task = _tiny_task().eval()
    with torch.no_grad():
        for p in task.denoiser.parameters():
            p.add_(0.01 * torch.randn_like(p))
    task.ema.network.load_state_dict(task.denoiser.state_dict())
    directory = export_task(task, tmp_path / "model")
    assert {"config.json", "model.safetensors", "task.json"} <= {p.name for p in directory.iterdir()}
    loaded = load_task(Shape3DTask, directory)
    for (name, a), (_, b) in zip(task.sampling_network().state_dict().items(), loaded.sampling_network().state_dict().items()):
        assert torch.equal(a, b), name
    a = task.sample_clouds(["a tall cylinder"], 256, options=SamplingOptions(steps=3, seed=5))
    b = loaded.sample_clouds(["a tall cylinder"], 256, options=SamplingOptions(steps=3, seed=5))
    assert torch.equal(a, b)


def test_export_refuses_another_task(tmp_path):
    import json

    import pytest

    directory = export_task(_tiny_task(), tmp_path / "model")
    meta = json.loads((directory / "task.json").read_text())
    meta["task"] = "AudioTask"
    (directory / "task.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="AudioTask"):
        load_task(Shape3DTask, directory)


def test_window_attention_and_mmdit_backbones_run_in_the_3d_task():
    windowed = _tiny_task(backbone={"window_size": 2, "window_blocks": [0]})
    joint = _tiny_task(backbone={"arch": "mmdit"})
    points = torch.randn(2, 256, 3)
    context, mask = windowed.encode_captions(["a large cube", "a small torus"])
    for task in (windowed, joint):
        velocity = task.denoiser(points, torch.tensor([0.3, 0.9]), context, mask)
        assert velocity.shape == points.shape and torch.isfinite(velocity).all()
        velocity.square().mean().backward()
