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

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from unidit.apps.joint.denoiser import JointDenoiser
from unidit.apps.joint.inner import build_inner
from unidit.tasks.motion.task import MotionTask
from unidit.tasks.shape3d.task import Shape3DTask
from unidit.tasks.t2a.task import T2ATask
from unidit.tasks.t2v.task import T2VTask
from unidit.training import rng_state
from unidit.training.flow_task import FlowMatchingTask
from unidit.training.joint.objective import draw_targets, sample_errors
from unidit.training.masked_task import MaskedDiffusionTask

TASKS: dict[str, type[FlowMatchingTask]] = {"shape3d": Shape3DTask, "t2a": T2ATask, "t2v": T2VTask,
                                            "motion": MotionTask}
"""The tasks a joint run can hold; a new task adds itself here (its issue says so)."""

TOKENIZER_OPTION = {"motion": "vqvae"}
"""The constructor option naming a task's frozen tokenizer folder, where it is not ``vae``."""


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
        vae: each task's frozen tokenizer folder, handed to it as its ``vae`` option (motion: its
            ``vqvae``), e.g. ``{"t2a": "<audio-vae run>/model", "t2v": "<video-vae run>/model",
            "motion": "<motion-vq run>/model"}``; ``unidit fit joint`` trains the missing ones first,
            as ``unidit fit t2a`` / ``t2v`` / ``motion`` do.
        **flow_options: the :class:`FlowMatchingTask` options of the joint run (lr, EMA, ...).

    Caption misses are embedded 32 at a time, each padded to a multiple of 8 tokens
    (bit-exact whatever the batching, so resume stays exact): a joint step brings
    captions of four datasets, and one bf16 call for 24 of them took 113 ms against
    320 ms one by one (2-core Intel Xeon, family 6 model 167).
    """

    caption_batching = {"batch_size": 32, "pad_multiple": 8}

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
                own[TOKENIZER_OPTION.get(name, "vae")] = str(vae[name])
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

    def on_fit_start(self) -> None:
        """Give discrete tasks their training codes' statistics (the priority schedule), as their own runs do."""
        super().on_fit_start()
        data = getattr(getattr(self.trainer, "datamodule", None), "modules", {})
        for name, sub in self.subtasks.items():
            if isinstance(sub, MaskedDiffusionTask) and name in data and not sub.has_code_importance:
                sub.set_code_counts(data[name].code_counts(sub.hparams.codebook_size))
                if self.ema is not None:  # the EMA copy follows the live buffers at every update; set it now too
                    for key in ("code_importance", "has_code_importance"):
                        getattr(self.ema.network.parts[name], key).copy_(getattr(sub.denoiser, key))

    # -- training -------------------------------------------------------------------------
    def joint_losses(self, batch: dict[str, Any], drop: bool = True, network: JointDenoiser | None = None
                     ) -> dict[str, Tensor]:
        """``{task: (B_task,) per-sample errors}`` on each task's part of ``batch`` (one backbone call).

        A flow task's error is its velocity MSE; a masked-diffusion task's (motion) is the
        cross-entropy of its masked codes plus its auxiliary terms (the length predictor's).
        """
        unknown = sorted(set(batch) - set(self.subtasks))
        if unknown:
            raise ValueError(f"batch holds tasks {unknown}; this joint run has {', '.join(self.subtasks)}")
        network = network or self.denoiser
        inputs, finish = {}, {}
        for name in self.task_names:
            if name in batch:
                inputs[name], finish[name] = self.task_inputs(name, batch[name], drop, network)
        predictions = network.forward_mixed(inputs)
        return {name: finish[name](predictions[name]) for name in inputs}

    def task_inputs(self, name: str, batch: Any, drop: bool = True, network: JointDenoiser | None = None
                    ) -> tuple[tuple, Callable[[Tensor], Tensor]]:
        """Task ``name``'s network inputs ``(x, t, context, context_mask, *slot_args)`` for its own ``batch``
        and the function from its network output to its per-sample errors ``(B,)``."""
        # a task draws its training-only conditioning (held frames, spans, half-spaces) when it is in
        # training mode; Lightning switches modes by setting ``.training`` on submodules, and the tasks
        # are not submodules, so they follow this module's flag here
        sub = self.subtasks[name]
        sub.training = self.training
        if isinstance(sub, MaskedDiffusionTask):
            return self._masked_inputs(sub, (network or self.denoiser).parts[name], batch, drop)
        return self._flow_inputs(sub, batch, drop)

    def _text(self, captions, drop: bool) -> tuple[Tensor, Tensor]:
        return self.encode_captions(self.drop_captions(captions) if drop else list(captions))

    def _flow_inputs(self, sub: FlowMatchingTask, batch: Any, drop: bool) -> tuple[tuple, Callable[[Tensor], Tensor]]:
        """A flow task's noisy tokens for the mixed row, and its per-sample velocity error."""
        flow_in = sub.flow_inputs(batch)
        context, context_mask = self._text(flow_in.captions, drop)
        targets = draw_targets(self.flow, flow_in.x0, flow_in.mask, flow_in.cond)
        return (targets.x_t, targets.t, context, context_mask), lambda pred: sample_errors(pred, targets)

    def _masked_inputs(self, sub: MaskedDiffusionTask, part: torch.nn.Module, batch: Any, drop: bool
                       ) -> tuple[tuple, Callable[[Tensor], Tensor]]:
        """A masked-diffusion task's masked codes for the mixed row, and its per-sample error."""
        token_in = sub.token_inputs(batch)
        # the task is not a submodule, so its own .device stays where it was built; follow its part's
        device = next(part.parameters()).device
        token_in = dataclasses.replace(token_in, codes=token_in.codes.to(device), valid=token_in.valid.to(device),
                                       given=None if token_in.given is None else token_in.given.to(device))
        context, context_mask = self._text(token_in.captions, drop)
        objective = sub.objective(part)
        t, tokens, masked = objective.draw(token_in.codes, token_in.valid, token_in.given)  # (B,), (B, L), (B, L)
        extra = sub.sample_auxiliary_losses(token_in, context, context_mask, part)  # {name: (B,)}

        def errors(logits: Tensor) -> Tensor:  # (B, L, K) -> (B,)
            ce = objective.token_errors(logits, token_in.codes, masked)  # (B, L)
            per_sample = ce.sum(dim=1) / masked.sum(dim=1).clamp(min=1)
            return per_sample + sum(extra.values()) if extra else per_sample

        return (tokens, t, context, context_mask, token_in.valid), errors

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
