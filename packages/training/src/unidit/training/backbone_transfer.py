"""Start a task from another run's backbone (transfer), and freeze it behind low-rank adapters.

Transfer: every task's velocity network is a per-task patch embedding and head
around one backbone (:class:`~unidit.backbones.latent_denoiser.LatentDenoiser`),
so the backbone of one run can start another task, of another modality
(DiT-3D, Mo et al. 2023, §4.4, initialises its 3D DiT from 2D ImageNet DiT
weights; a joint run's ``<run>/model/backbone`` is the shared one). The task's
own patch embedding and head start fresh.

Light adaptation: the transferred backbone frozen, with LoRA (Hu et al. 2022)
on its attention and MLP projections, trained together with the task's own
parts. The adapters come from Hugging Face ``peft``; an export merges them
into the weights (``W + (alpha / r)·B·A``), so an adapted run exports and
loads exactly like any other.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraModel
from safetensors.torch import load_file
from torch import nn

LORA_TARGETS = ["qkv", "out", "q", "kv", "context_qkv", "context_out", "w12", "w3"]
"""The backbone's attention and MLP projections (Flag-DiT and MMDiT); adaLN and the timestep MLP stay frozen."""
ADAPTER_NAME = "task"
_PER_TASK_KEYS = ("condition.modality.",)  # a joint run's modality table: sized by its tasks, not shared blocks


def shared_backbone_folder(folder: str | Path) -> Path:
    """A joint export's shared-backbone folder (named in its ``joint.json``), else ``folder`` itself."""
    folder = Path(folder)
    if (folder / "joint.json").is_file():
        return folder / json.loads((folder / "joint.json").read_text()).get("backbone", "backbone")
    return folder


def backbone_weights(folder: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The backbone's state dict stored in ``folder`` and the file it came from.

    ``folder`` is a backbone export (``<joint run>/model/backbone``), a joint export
    (``<joint run>/model``, whose ``backbone/`` is read) or any task export
    (``<run>/model``, whose ``backbone.*`` weights are read).
    """
    folder = shared_backbone_folder(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"init_backbone: {folder} holds no model.safetensors (expected a backbone, "
                                "joint or task export folder, e.g. runs/joint/version_0/model)")
    try:
        state = load_file(weights)
    except Exception as error:
        raise ValueError(f"init_backbone: cannot read {weights}: {error}") from error
    if (folder / "task.json").is_file():  # a task export: the denoiser's backbone.* entries
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        if not state:
            raise ValueError(f"init_backbone: {weights} has no backbone.* weights (not a backbone denoiser)")
    return state, weights


def load_backbone(backbone: nn.Module, folder: str | Path) -> list[str]:
    """Copy the backbone weights of ``folder`` into ``backbone``; returns the per-task entries left as they were.

    The shapes must match (same width, depth, heads and architecture); a
    mismatch is a ValueError naming the file and the first differing entries.
    """
    state, source = backbone_weights(folder)
    own = backbone.state_dict()
    per_task = [k for k in own if k.startswith(_PER_TASK_KEYS)]
    shared = {k: v for k, v in state.items() if not k.startswith(_PER_TASK_KEYS)}
    missing = sorted(set(own) - set(shared) - set(per_task))
    unexpected = sorted(set(shared) - set(own))
    wrong = [f"{k} {tuple(shared[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(shared) & set(own))
             if shared[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(filter(None, [f"missing {missing[:4]}" if missing else "",
                                         f"unexpected {unexpected[:4]}" if unexpected else "",
                                         f"shapes differ {wrong[:4]}" if wrong else ""]))
        raise ValueError(f"init_backbone: {source} does not fit this task's backbone ({detail}); build the task "
                         "with the source's backbone settings (its config.json), e.g. --model.backbone "
                         "'{arch: mmdit, dim: 192, depth: 5, num_heads: 4}'")
    backbone.load_state_dict(shared, strict=False)
    return per_task


def add_lora(backbone: nn.Module, rank: int, alpha: float | None = None) -> LoraModel:
    """Freeze ``backbone`` and wrap it with rank-``rank`` LoRA on its projections (``peft``).

    The adapters start as the identity (``B = 0``), so the adapted network equals
    the transferred one at step 0.
    """
    if rank < 1:
        raise ValueError(f"adapter_rank: expected >= 1, got {rank}")
    backbone.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=0.0,
                        target_modules=LORA_TARGETS, bias="none")
    return LoraModel(backbone, config, ADAPTER_NAME)


def merged(network: nn.Module) -> nn.Module:
    """``network`` itself, or a copy whose LoRA backbone is merged back into plain weights."""
    if not isinstance(getattr(network, "backbone", None), LoraModel):
        return network
    plain = copy.deepcopy(network)
    plain.backbone = plain.backbone.merge_and_unload()
    return plain


def adapter_parameters(network: nn.Module) -> int:
    """Trainable adapter parameters of ``network`` (its LoRA matrices)."""
    return sum(p.numel() for n, p in network.named_parameters() if "lora_" in n)
