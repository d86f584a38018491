"""Transfer (a backbone trained on one modality starts another task) and LoRA light adaptation."""

from __future__ import annotations

import pytest
import torch
from test_joint_model import TASK_OPTIONS, task_batches, tiny_joint
from unidit.apps.joint.export import export_joint
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tasks.t2a.task import T2ATask
from unidit.training.backbone_transfer import adapter_parameters, add_lora
from unidit.training.export import export_task, load_task

JOINT_BACKBONE = {"arch": "mmdit", "dim": 192, "depth": 5, "num_heads": 4}  # joint/fit.yaml


def t2a(**options) -> T2ATask:
    torch.manual_seed(1)
    return T2ATask(preset="tiny", **TASK_OPTIONS["t2a"], warmup_steps=1, caption_dropout=0.0, **options)


def velocity(task: T2ATask, network=None) -> torch.Tensor:
    """The network's velocity on a fixed noisy t2a batch (fixed draws)."""
    flow_in = task.flow_inputs(task_batches()["t2a"])
    g = torch.Generator().manual_seed(3)
    x = torch.randn(flow_in.x0.shape, generator=g)
    t = torch.full((x.shape[0],), 0.7)
    context, mask = task.encode_captions(flow_in.captions)
    with torch.no_grad():
        return (network or task.denoiser)(x, t, context, mask)


@pytest.fixture(scope="module")
def joint_export(tmp_path_factory):
    """A tiny joint run's export with a trained-looking (randomised) backbone."""
    joint = tiny_joint()
    joint.ensure_ema()
    for p in joint.ema.network.backbone.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return export_joint(joint, tmp_path_factory.mktemp("joint") / "model"), joint


def test_transfer_copies_the_shared_blocks_and_keeps_the_task_own_parts(joint_export):
    folder, joint = joint_export
    task = t2a(init_backbone=str(folder), backbone={"num_modalities": 1})
    fresh_embed = task.denoiser.patch_embed.weight.clone()
    task.setup("fit")
    source = joint.ema.network.backbone.state_dict()
    mine = task.denoiser.backbone.state_dict()
    for key, value in mine.items():
        if key.startswith("condition.modality."):
            assert value.shape != source[key].shape  # 1 modality here, 3 in the joint run: left as initialised
        else:
            assert torch.equal(value, source[key]), key
    assert torch.equal(task.denoiser.patch_embed.weight, fresh_embed)  # the task's own parts start fresh
    assert torch.equal(task.ema.network.backbone.state_dict()["blocks.0.attn.qkv.weight"], source["blocks.0.attn.qkv.weight"])


def test_transfer_from_a_single_task_export_of_another_modality(tmp_path):
    torch.manual_seed(2)
    shape = Shape3DTask(preset="tiny", **TASK_OPTIONS["shape3d"])
    shape.ensure_ema()
    for p in shape.ema.network.backbone.parameters():
        torch.nn.init.normal_(p, std=0.05)
    folder = export_task(shape, tmp_path / "shape3d")
    task = t2a(init_backbone=str(folder))
    task.setup("fit")
    expected = shape.ema.network.backbone.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in task.denoiser.backbone.state_dict().items())


def test_a_backbone_of_another_size_is_refused_with_the_file_named(joint_export):
    folder, _ = joint_export
    task = t2a(init_backbone=str(folder), backbone={"dim": 96})
    with pytest.raises(ValueError, match=r"backbone/model.safetensors does not fit .*shapes differ"):
        task.setup("fit")
    with pytest.raises(FileNotFoundError, match="holds no model.safetensors"):
        t2a(init_backbone=str(folder.parent)).setup("fit")


def test_adapters_freeze_the_backbone_start_as_identity_and_stay_small(joint_export):
    folder, _ = joint_export
    plain = t2a(init_backbone=str(folder))
    plain.setup("fit")
    adapted = t2a(init_backbone=str(folder), adapter_rank=4)
    adapted.setup("fit")
    torch.testing.assert_close(velocity(adapted), velocity(plain), rtol=0, atol=0)  # B = 0: the identity
    trainable = {n for n, p in adapted.denoiser.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or not n.startswith("backbone.") for n in trainable)
    optimised = {id(p) for group in adapted.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in adapted.denoiser.parameters() if p.requires_grad}

    # the default joint backbone (joint/fit.yaml) at rank 4: adapters under 5 % of its parameters
    from unidit.backbones.build import build_backbone
    from unidit.backbones.config import backbone_config

    backbone = build_backbone(backbone_config("small", **JOINT_BACKBONE))
    size = sum(p.numel() for p in backbone.parameters())
    assert adapter_parameters(add_lora(backbone, 4)) / size < 0.05


def test_adapted_export_merges_into_plain_weights_and_loads_as_any_task(joint_export, tmp_path):
    folder, _ = joint_export
    adapted = t2a(init_backbone=str(folder), adapter_rank=4)
    adapted.setup("fit")
    for name, p in adapted.ema.network.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # as if trained
    expected = velocity(adapted, adapted.ema.network)
    loaded = load_task(T2ATask, export_task(adapted, tmp_path / "adapted"))
    assert not any("lora_" in n for n, _ in loaded.denoiser.named_parameters())
    torch.testing.assert_close(velocity(loaded), expected, rtol=1e-5, atol=1e-6)


def test_a_lightning_checkpoint_of_an_adapted_run_loads_its_adapters(joint_export):
    folder, _ = joint_export
    adapted = t2a(init_backbone=str(folder), adapter_rank=4)
    adapted.setup("fit")
    for name, p in adapted.denoiser.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    checkpoint = {"state_dict": adapted.state_dict()}
    adapted.on_save_checkpoint(checkpoint)
    restored = t2a(init_backbone=str(folder), adapter_rank=4)
    restored.on_load_checkpoint(checkpoint)  # what Lightning calls before load_state_dict
    restored.load_state_dict(checkpoint["state_dict"])
    torch.testing.assert_close(velocity(restored), velocity(adapted), rtol=0, atol=0)


def test_a_joint_run_refuses_adapters():
    with pytest.raises(ValueError, match="adapter_rank"):
        tiny_joint(adapter_rank=4)
