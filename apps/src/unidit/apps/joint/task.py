"""The joint rectified-flow task: every task's data and objective, one backbone, one EMA.

A step takes ``{task: batch}`` (each task's own collated batch, drawn by the
mixing ratio, :mod:`unidit.training.joint.mixing`), lets each task turn its
batch into clean tokens with its own ``flow_inputs`` (its held tokens,
padding and masks included), draws times and noise per task, runs all noisy
samples through the shared backbone in one varlen row, and averages every
sample's own velocity error over the batch: a task's weight in the gradient is
its share of the batch's samples (the mixing ratio), and the loss of a global
batch is the mean of its DDP ranks' losses however the tasks fell on the ranks. ``train/loss/<task>`` is logged
for each task. Captions of every task go through one frozen text encoder
(each task's default, MiniLM-L6), with the same caption dropout as a
single-task run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from unidit.apps.joint.denoiser import JointDenoiser
from unidit.apps.joint.inner import build_inner
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tasks.t2a.task import T2ATask
from unidit.tasks.t2v.task import T2VTask
from unidit.training import rng_state
from unidit.training.flow_task import FlowMatchingTask
from unidit.training.joint.objective import draw_targets, sample_errors

TASKS: dict[str, type[FlowMatchingTask]] = {"shape3d": Shape3DTask, "t2a": T2ATask, "t2v": T2VTask}
"""The tasks a joint run can hold; a new task adds itself here (its issue says so)."""


def parse_tasks(tasks: str | list[str]) -> list[str]:
    """``"shape3d,t2a"`` or a list -> names, checked against :data:`TASKS`."""
    names = [n.strip() for n in (tasks.split(",") if isinstance(tasks, str) else tasks) if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ValueError(f"--tasks: unknown task(s) {unknown or names}; choose from {', '.join(TASKS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--tasks: a task is named twice in {names}")
    return names



class JointTask(FlowMatchingTask):
    """Several tasks trained on one backbone.

    Args:
        tasks: comma-separated task names (``shape3d,t2a,t2v``), in modality-id order.
        task_options: each task's own constructor options (its ``model:`` section of a single-task
            YAML without ``preset``/``backbone``: e.g. ``{"t2a": {"vae": ..., "patch_size": 4}}``).
        preset: backbone size preset of the shared backbone.
        backbone: ``BackboneConfig`` overrides of the shared backbone; ``num_modalities`` is set
            to the number of tasks.
        vae: each task's frozen tokenizer folder, handed to it as its ``vae`` option, e.g.
            ``{"t2a": "<audio-vae run>/model", "t2v": "<video-vae run>/model"}``; ``unidit fit joint``
            trains the missing ones first, as ``unidit fit t2a`` / ``t2v`` do.
        **flow_options: the :class:`FlowMatchingTask` options of the joint run (lr, EMA, ...).
    """

    def __init__(self, tasks: str | list[str] = "shape3d,t2a,t2v", task_options: dict[str, dict] | None = None,
                 preset: str = "small", backbone: dict | None = None, vae: dict[str, str] | None = None,
                 **flow_options):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        if self.adapter_rank:
            raise ValueError("adapter_rank: adapters adapt one task's run to a frozen backbone; train them with "
                             "unidit fit <task> --model.init_backbone <joint run>/model --model.adapter_rank R")
        names = parse_tasks(tasks)
        options = dict(task_options or {})
        stray = sorted(set(options) - set(TASKS))
        if stray:
            raise ValueError(f"task_options: options for unknown task(s) {stray}; choose from {', '.join(TASKS)}")
        # options of known tasks left out of --tasks are ignored, so one YAML serves every subset
        shared = {**dict(backbone or {}), "num_modalities": len(names)}
        self.subtasks: dict[str, FlowMatchingTask] = {}  # not submodules: their denoisers live in self.denoiser
        for name in names:
            own = dict(options.get(name) or {})
            if (vae or {}).get(name) is not None:
                own["vae"] = str(vae[name])
            clash = sorted({"preset", "backbone"} & set(own))
            if clash:
                raise ValueError(f"task_options.{name}: {clash} are the joint run's (set model.preset / model.backbone)")
            for key in ("text_encoder", "text_max_length"):  # one text encoder: each export records the joint's
                if key in flow_options:
                    own[key] = flow_options[key]
            self.subtasks[name] = build_inner(TASKS[name], dict(preset=preset, backbone=shared, **own))
        self.denoiser = JointDenoiser({name: sub.denoiser for name, sub in self.subtasks.items()})

    @property
    def task_names(self) -> list[str]:
        return list(self.subtasks)

    # -- exact resume: the task's own random streams (held-token draws) -----------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["unidit_rng_tasks"] = {n: rng_state.capture_attributes(s) for n, s in self.subtasks.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, state in checkpoint.get("unidit_rng_tasks", {}).items():
            rng_state.restore_attributes(self.subtasks[name], state)

    # -- training -------------------------------------------------------------------------
    def joint_losses(self, batch: dict[str, Any], drop: bool = True, network: JointDenoiser | None = None
                     ) -> dict[str, Tensor]:
        """``{task: (B_task,) per-sample velocity errors}`` on each task's part of ``batch`` (one backbone call)."""
        unknown = sorted(set(batch) - set(self.subtasks))
        if unknown:
            raise ValueError(f"batch holds tasks {unknown}; this joint run has {', '.join(self.subtasks)}")
        targets, inputs = {}, {}
        for name in self.task_names:
            if name not in batch:
                continue
            # a task's flow_inputs draws its training-only conditioning (held frames, spans, half-spaces)
            # when it is in training mode; Lightning switches modes by setting ``.training`` on
            # submodules, and the tasks are not submodules, so they follow this module's flag here
            self.subtasks[name].training = self.training
            flow_in = self.subtasks[name].flow_inputs(batch[name])
            captions = self.drop_captions(flow_in.captions) if drop else list(flow_in.captions)
            context, context_mask = self.encode_captions(captions)
            targets[name] = draw_targets(self.flow, flow_in.x0, flow_in.mask, flow_in.cond)
            inputs[name] = (targets[name].x_t, targets[name].t, context, context_mask)
        predictions = (network or self.denoiser).forward_mixed(inputs)
        return {name: sample_errors(predictions[name], targets[name]) for name in targets}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        errors = self.joint_losses(batch)
        total_samples = sum(int(e.numel()) for e in errors.values())
        loss = torch.cat(list(errors.values())).mean()  # every sample once, whichever task it is from
        if self.guarded_loss(loss, total_samples) is None:  # not finite: skipped
            return None
        for name, value in errors.items():
            self.log(f"train/loss/{name}", value.detach().mean(), batch_size=int(value.numel()))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        state = torch.random.get_rng_state()
        torch.manual_seed(batch_idx)  # the same draws on every validation
        try:
            errors = self.joint_losses(batch, drop=False, network=self.sampling_network())
        finally:
            torch.random.set_rng_state(state)
        for name, value in errors.items():
            self.log(f"val/loss/{name}", value.mean(), batch_size=int(value.numel()))
        loss = sum(e.mean() for e in errors.values()) / len(errors)
        self.log("val/loss", loss, prog_bar=True, batch_size=sum(int(e.numel()) for e in errors.values()))
        return loss

    # -- the single tasks inside --------------------------------------------------------------
    def task_view(self, name: str, use_ema: bool = True) -> FlowMatchingTask:
        """Task ``name`` as a single-task module whose denoiser is this run's part (EMA weights by default)."""
        if name not in self.subtasks:
            raise ValueError(f"task: {name!r} is not in this joint run; it has {', '.join(self.subtasks)}")
        sub = self.subtasks[name]
        sub.denoiser = self.sampling_network(use_ema).parts[name]
        sub.ema = None  # so sub.sampling_network() is the part just set
        sub._captions = self._captions
        sub.eval()
        return sub

    def release_views(self) -> None:
        """Give every task back its live part (after :meth:`task_view`)."""
        for name, sub in self.subtasks.items():
            sub.denoiser, sub.ema = self.denoiser.parts[name], None
            sub.training = self.training
