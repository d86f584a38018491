"""`benchmarks/transfer.py`'s pieces: the checkpoint config it lays over a fit, metric paths, steps-to-target."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "transfer.py"


def _script():
    spec = importlib.util.spec_from_file_location("transfer_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_config_keeps_every_nth_step_and_the_last():
    config = yaml.safe_load(_script().checkpoint_config(400))
    checkpoint, monitor = config["trainer"]["callbacks"]
    assert checkpoint["class_path"].endswith("ModelCheckpoint")
    assert checkpoint["init_args"] == {"every_n_train_steps": 400, "save_top_k": -1, "save_last": True,
                                       "filename": "{step}"}  # files step=400.ckpt, step=800.ckpt, ...
    assert monitor["class_path"].endswith("LearningRateMonitor")


def test_headline_reads_each_tasks_report_and_steps_to_target():
    script = _script()
    reports = {  # the fields of each task's metrics.json that its README row quotes
        "shape3d": ({"faithfulness_ratio": 0.74}, 0.74),
        "t2a": ({"accuracy_ratio": 0.52}, 0.52),
        "t2v": ({"accuracy_ratio": {"shape": 0.6, "colour": 0.98, "motion": 0.8}}, 0.6),
        "motion": ({"text_to_motion": {"generated": {"r_precision": [0.8, 0.9, 0.9]},
                                       "real": {"r_precision": [0.95, 1.0, 0.96]}}}, 0.9 / 0.96),
    }
    assert set(reports) == set(script.HEADLINE)
    for task, (metrics, expected) in reports.items():
        assert abs(script.headline(metrics, task) - expected) < 1e-12, task
    curve = {400: 0.43, 800: 0.67, 1200: 0.744, 1600: 0.72, 2000: 0.81}
    assert script.steps_to(curve, 0.731) == 1200  # the first checkpoint at or above the target
    assert script.steps_to(curve, 0.9) is None


def test_source_backbone_of_a_task_export_and_of_a_joint_export(tmp_path):
    script = _script()
    task = tmp_path / "task"
    task.mkdir()
    (task / "config.json").write_text(json.dumps({"backbone": {"arch": "mmdit", "dim": 192}, "patch_size": 4}))
    assert script.source_backbone(task) == {"arch": "mmdit", "dim": 192}
    joint = tmp_path / "joint"
    (joint / "backbone").mkdir(parents=True)
    (joint / "joint.json").write_text(json.dumps({"tasks": ["shape3d"], "modalities": {"shape3d": 0}}))
    (joint / "backbone" / "config.json").write_text(json.dumps(
        {"arch": "mmdit", "dim": 192, "depth": 5, "num_heads": 4, "context_dim": 384, "mlp_ratio": 4.0}))
    assert script.source_backbone(joint) == {"arch": "mmdit", "dim": 192, "depth": 5, "num_heads": 4}
    with pytest.raises(SystemExit, match="no config.json or joint.json"):
        script.source_backbone(tmp_path / "missing")


def test_adapter_share_counts_lora_against_the_frozen_backbone_in_the_checkpoint(tmp_path):
    import torch

    state = {"denoiser.backbone.model.attn.qkv.base_layer.weight": torch.zeros(30, 10),  # frozen: 300
             "denoiser.backbone.model.attn.qkv.lora_A.task.weight": torch.zeros(2, 10),   # LoRA: 20 + 60
             "denoiser.backbone.model.attn.qkv.lora_B.task.weight": torch.zeros(30, 2),
             "denoiser.head.weight": torch.zeros(5, 10),  # the task's own head: neither
             "ema.network.backbone.model.attn.qkv.lora_A.task.weight": torch.zeros(2, 10)}  # EMA copy: not counted
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": state}, tmp_path / "checkpoints" / "last.ckpt")
    assert _script().adapter_share(tmp_path) == "adapters: 80 LoRA parameters (26.7% of the frozen backbone's 300)"
