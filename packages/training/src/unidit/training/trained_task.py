"""The Lightning base every unidit task trains with, whatever its objective.

A task sets ``self.denoiser`` (the network that is trained) and computes its
loss; this base supplies the rest, so a continuous (rectified flow), discrete
(masked diffusion) or autoregressive task trains the same way: AdamW with
linear warm-up and cosine decay, EMA weights of the denoiser for sampling
(DiT §4), every random stream a step draws from carried in checkpoints (a
resumed run continues bit-identically), and a guard that skips steps whose
loss is NaN/Inf and stops a run after too many in a row.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from unidit.backbones.training_blocks import compile_training_blocks, drop_training_blocks
from unidit.training import backbone_transfer, rng_state
from unidit.training.block_compilation import check_option, compile_decision
from unidit.training.ema import EMAWeights
from unidit.training.nonfinite import NonFiniteGuard
from unidit.training.schedule import warmup_cosine


class TrainedTask(pl.LightningModule):
    """Optimiser, EMA, checkpointed random streams and the non-finite guard of ``self.denoiser``.

    Args:
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: decay of the EMA weights used for sampling.
        max_nonfinite_steps: a step whose loss is NaN/Inf is skipped (no update) and
            logged; this many in a row stop the run with
            :class:`~unidit.training.nonfinite.NonFiniteLossError` (0 = never stop).
        init_backbone: start the denoiser's backbone from this run's weights (a backbone, joint or
            task export folder; transfer, :mod:`unidit.training.backbone_transfer`); None = from scratch.
        adapter_rank: > 0 freezes the backbone and trains rank-``adapter_rank`` LoRA adapters on its
            projections, plus the task's own parts (light adaptation); 0 = train everything.
        adapter_alpha: LoRA scale numerator (``alpha / rank``); None = the rank (scale 1).
        compile_blocks: compile the backbone's blocks for training steps (``torch.compile``):
            True, False, or ``"auto"`` (on a CPU, for runs long enough to repay the compile time;
            :mod:`unidit.training.block_compilation`). Sampling and validation stay eager.
        compile_dynamic: compile the blocks for every sequence length at once (``dynamic=True``)
            instead of one graph per length; for batches whose token or caption lengths vary.

    Checkpoints carry every random stream a step draws from (global torch /
    NumPy / Python generators and the task's own ``random.Random`` /
    ``torch.Generator`` attributes).
    """

    denoiser: torch.nn.Module

    def __init__(self, lr: float = 3e-4, weight_decay: float = 0.0, warmup_steps: int = 100,
                 ema_decay: float = 0.999, max_nonfinite_steps: int = 10, init_backbone: str | None = None,
                 adapter_rank: int = 0, adapter_alpha: float | None = None,
                 compile_blocks: bool | Literal["auto"] = False, compile_dynamic: bool = False):
        super().__init__()
        if adapter_rank < 0:
            raise ValueError(f"adapter_rank: expected >= 0 (0 = no adapters), got {adapter_rank}")
        self.init_backbone, self.adapter_rank, self.adapter_alpha = init_backbone, int(adapter_rank), adapter_alpha
        self._backbone_prepared = False
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.ema_decay = ema_decay
        self.ema: EMAWeights | None = None
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        self._skipped_step = False
        self._global_rng_to_restore: dict | None = None
        check_option(compile_blocks)
        self.compile_blocks = compile_blocks
        self.compile_dynamic = bool(compile_dynamic)

    # -- EMA ------------------------------------------------------------------------
    def ensure_ema(self) -> EMAWeights:
        """Create the EMA copy of the denoiser once the task has built its denoiser."""
        if self.ema is None:
            self.ema = EMAWeights(self.denoiser, self.ema_decay)
        return self.ema

    def setup(self, stage: str) -> None:
        self.prepare_backbone(load_weights=stage == "fit")
        self.ensure_ema()

    def prepare_backbone(self, load_weights: bool = True) -> None:
        """Transfer ``init_backbone`` into the denoiser's backbone and add the adapters, once, before the EMA copy.

        A resumed run or a checkpoint being loaded gets the adapters only: its weights
        come from the checkpoint.
        """
        if self._backbone_prepared or (self.init_backbone is None and self.adapter_rank == 0):
            return
        self._backbone_prepared = True
        if self.ema is not None:
            raise RuntimeError("prepare_backbone: the EMA copy exists already; transfer must come before it")
        backbone = getattr(self.denoiser, "backbone", None)
        if backbone is None:
            raise ValueError(f"init_backbone / adapter_rank: {type(self.denoiser).__name__} has no backbone")
        if self.init_backbone is not None and load_weights:
            kept = backbone_transfer.load_backbone(backbone, self.init_backbone)
            print(f"backbone initialised from {self.init_backbone}"
                  + (f" (kept this task's own {', '.join(kept)})" if kept else ""), flush=True)
        if self.adapter_rank > 0:
            self.denoiser.backbone = backbone_transfer.add_lora(backbone, self.adapter_rank, self.adapter_alpha)
            adapters = backbone_transfer.adapter_parameters(self.denoiser)
            frozen = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
            print(f"adapters: {adapters:,} LoRA parameters ({adapters / max(frozen, 1):.1%} of the frozen "
                  f"backbone's {frozen:,})", flush=True)

    def export_network(self) -> torch.nn.Module:
        """The network an export writes: the sampling network, adapters merged into plain weights."""
        return backbone_transfer.merged(self.sampling_network())

    def sampling_network(self, use_ema: bool = True) -> torch.nn.Module:
        return self.ema.network if (use_ema and self.ema is not None) else self.denoiser

    # -- checkpointed state beyond the weights ---------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["unidit_rng"] = {"global": rng_state.capture_global(), "task": rng_state.capture_attributes(self)}
        checkpoint["unidit_nonfinite"] = self.nonfinite.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.prepare_backbone(load_weights=False)  # adapters in place before the adapted weights load
        self.ensure_ema()  # the checkpoint's state_dict holds the EMA weights too
        if "unidit_rng" in checkpoint:
            rng_state.restore_attributes(self, checkpoint["unidit_rng"]["task"])
            # global streams are restored when training starts, after the sanity-check validation
            self._global_rng_to_restore = checkpoint["unidit_rng"]["global"]
        if "unidit_nonfinite" in checkpoint:
            self.nonfinite.load_state_dict(checkpoint["unidit_nonfinite"])

    def on_train_start(self) -> None:
        if self._global_rng_to_restore is not None:
            rng_state.restore_global(self._global_rng_to_restore)
            self._global_rng_to_restore = None
        self._compile_blocks_if_asked()

    def on_train_end(self) -> None:
        backbone = getattr(self.denoiser, "backbone", None)
        if backbone is not None:
            drop_training_blocks(backbone)

    def _compile_blocks_if_asked(self) -> None:
        trainer = self._trainer
        max_steps = trainer.max_steps if trainer is not None and trainer.max_steps > 0 else None  # -1: no limit
        wanted, why = compile_decision(self.compile_blocks, max_steps, self.device.type)
        if not wanted:
            if self.compile_blocks:
                print(why, flush=True)
            return
        backbone = getattr(self.denoiser, "backbone", None)
        try:
            count = compile_training_blocks(backbone, dynamic=True if self.compile_dynamic else None)
        except ValueError as error:  # no `blocks` ModuleList: nothing to compile
            print(f"compile_blocks: {type(self.denoiser).__name__}'s backbone: {error}; training eager", flush=True)
            return
        shapes = ("dynamic shapes from the first call" if self.compile_dynamic
                  else "one graph per shape until a size changes")
        print(f"{why}: compiled {count} backbone blocks for training ({shapes}; torch.compile; the first "
              "steps wait for Inductor, about a minute on 2 CPU cores; --model.compile_blocks false to skip)",
              flush=True)

    # -- the step ---------------------------------------------------------------------
    def guarded_loss(self, loss: Tensor, batch_size: int) -> Tensor | None:
        """``loss`` logged as ``train/loss``, or None (Lightning: no backward, no update) when it is not finite.

        Under DDP every rank skips together when any rank's loss is not finite.
        """
        finite = torch.isfinite(loss.detach())
        if self._trainer is not None and self._trainer.world_size > 1:  # every rank skips together
            finite = self._trainer.strategy.reduce_boolean_decision(bool(finite), all=True)
        if not self.nonfinite.check(float(loss.detach()) if bool(finite) else float("nan"), self.global_step):
            self._skipped_step = True
            self.log("train/nonfinite_skipped", float(self.nonfinite.skipped_total), batch_size=batch_size)
            print(f"step {self.global_step}: non-finite loss, skipped ({self.nonfinite.streak} in a row)", flush=True)
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the EMA update.

        Updating here (not in ``on_train_batch_end``) puts the EMA in step with the
        weights before any callback's ``on_train_batch_end`` writes a checkpoint.
        """
        super().optimizer_step(*args, **kwargs)
        if self._skipped_step:  # non-finite loss: no update happened, leave the EMA alone too
            self._skipped_step = False
            return
        self.ensure_ema().update(self.denoiser)

    def configure_optimizers(self):
        # fused: one kernel per step for all tensors (the default on CPU is a Python loop per tensor;
        # 4.0 -> 1.4 ms a step for the t2a denoiser's 70 tensors on 2 cores)
        trainable = [p for p in self.denoiser.parameters() if p.requires_grad]  # not a frozen backbone
        optimizer = torch.optim.AdamW(
            trainable, lr=self.lr, weight_decay=self.weight_decay, betas=(0.9, 0.99),
            fused=all(p.device.type in ("cpu", "cuda") for p in trainable),
        )
        trainer = self._trainer  # None outside a Trainer (no schedule length: warm-up, then constant)
        total = int(trainer.max_steps) if trainer is not None and trainer.max_steps else -1
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.warmup_steps, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
