"""The Lightning base of tasks whose objective is masked discrete diffusion over code indices (motion).

A task supplies ``token_inputs(batch)`` (codes ``(B, L)``, their valid
positions, captions and optionally positions held given) and ``self.denoiser``,
called as ``denoiser(tokens, t, context, context_mask, valid) -> logits
(B, L, K)`` and carrying the buffers of :func:`add_code_statistics`. The objective (:class:`~unidit.backbones.masked_diffusion.MaskedDiffusion`:
MoMask's cosine or M2DM's priority schedule), caption dropout, cached text
embeddings, EMA weights, AdamW with warm-up/cosine, exact-resume RNG state and
the non-finite guard (:class:`~unidit.training.trained_task.TrainedTask`) come
from :class:`~unidit.training.flow_task.FlowMatchingTask`, which this class
extends for its caption handling; only the loss and the sampler differ (its
rectified-flow time options are accepted and unused).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from unidit.backbones.guidance import GuidedModel
from unidit.backbones.masked_diffusion import MaskedDiffusion, code_importance
from unidit.training.flow_task import NULL_CAPTION, FlowMatchingTask, stack_contexts
from unidit.training.sampling import at_least


@dataclass
class TokenInputs:
    """What a discrete task hands the objective for one batch."""

    codes: Tensor  # (B, L) long, 0 at PAD
    captions: list[str]  # B captions
    valid: Tensor  # (B, L) bool, real (non-PAD) positions
    given: Tensor | None = None  # (B, L) bool, positions held given (never masked, no loss)


@dataclass
class MaskedSamplingOptions:
    """How a masked-diffusion task draws codes (MoMask's defaults, Guo et al. CVPR 2024, §4).

    Attributes:
        steps: unmasking steps (MoMask: 10).
        cfg_scale: classifier-free guidance on the logits (1 = none; MoMask uses 4).
        temperature: of the code draws (0 = greedy).
        top_k: draw among the k most likely codes (0 = all).
        confidence_noise: Gumbel noise on the confidences, annealed to 0 (MaskGIT's choice temperature).
        priority_weight: weight of a drawn code's importance in the unmasking order (None = 1 for
            the priority schedule, 0 for cosine).
        seed: sampling seed; the k-th batch of a batched run uses seed + k.
    """

    steps: int = 10
    cfg_scale: float = 4.0
    temperature: float = 1.0
    top_k: int = 0
    confidence_noise: float = 0.0
    priority_weight: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        at_least("steps", self.steps, 1)
        at_least("cfg_scale", self.cfg_scale, 0.0)
        at_least("temperature", self.temperature, 0.0)
        at_least("top_k", self.top_k, 0)
        at_least("confidence_noise", self.confidence_noise, 0.0)

    def sampling(self) -> "MaskedSamplingOptions":
        """Just the sampling fields (a report's extra fields dropped)."""
        return MaskedSamplingOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MaskedSamplingOptions)})

    def with_seed(self, seed: int):
        """A copy with another sampling seed."""
        return dataclasses.replace(self, seed=seed)


def add_code_statistics(network: torch.nn.Module, codebook_size: int) -> None:
    """Give a denoiser the buffers of its training codes' importance: ``code_importance`` (K,) and
    ``has_code_importance`` (a flag), saved with its weights (``save_pretrained``)."""
    network.register_buffer("code_importance", torch.zeros(codebook_size))
    network.register_buffer("has_code_importance", torch.zeros((), dtype=torch.bool))


class MaskedDiffusionTask(FlowMatchingTask):
    """Shared training and sampling for masked-discrete-diffusion tasks.

    Args:
        codebook_size: codes K of the tokenizer (the denoiser embeds K + 1 ids, K = [mask]).
        schedule: ``cosine`` (MoMask) or ``priority`` (M2DM; needs :meth:`set_code_counts` before training).
        priority_noise: softness of the priority order (see :class:`MaskedDiffusion`).
        label_smoothing: of the cross-entropy (MoMask: 0.1).
        **task_options: the shared options of ``FlowMatchingTask`` (lr, EMA, caption dropout, text encoder, ...).
    """

    def __init__(
        self,
        codebook_size: int = 512,
        schedule: str = "priority",
        priority_noise: float = 0.5,
        label_smoothing: float = 0.1,
        **task_options,
    ):
        super().__init__(**task_options)
        self.diffusion = MaskedDiffusion(codebook_size, schedule, priority_noise=priority_noise,
                                         label_smoothing=label_smoothing)

    # -- hooks a task implements --------------------------------------------------------
    def token_inputs(self, batch: Any) -> TokenInputs:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_auxiliary_losses(self, inputs: TokenInputs, context: Tensor, context_mask: Tensor,
                                network: torch.nn.Module | None = None) -> dict[str, Tensor]:
        """Extra loss terms, ``(B,)`` per sample, added to the objective's (e.g. a length predictor's);
        ``network`` is the denoiser that computes them (default: the live one). None by default."""
        return {}

    def auxiliary_losses(self, inputs: TokenInputs, context: Tensor, context_mask: Tensor) -> dict[str, Tensor]:
        """The batch means of :meth:`sample_auxiliary_losses`."""
        return {name: value.mean() for name, value in self.sample_auxiliary_losses(inputs, context, context_mask).items()}

    # -- code statistics ------------------------------------------------------------------
    def set_code_counts(self, counts: Tensor) -> None:
        """Code counts ``(K,)`` of the training set -> the importance table of the priority schedule.

        The table lives in the denoiser's buffers (see :func:`add_code_statistics`), so checkpoints
        and exports (which hold the EMA denoiser) keep it; the EMA copy is set too.
        """
        importance = code_importance(counts)
        networks = [self.denoiser] + ([self.ema.network] if self.ema is not None else [])
        for network in networks:
            network.code_importance.copy_(importance.to(network.code_importance))
            network.has_code_importance.fill_(True)

    @property
    def has_code_importance(self) -> bool:
        return bool(self.denoiser.has_code_importance)

    def objective(self, network: torch.nn.Module | None = None) -> MaskedDiffusion:
        """The objective, its importance table in step with ``network``'s (default: the denoiser's) buffer."""
        network = self.denoiser if network is None else network
        if bool(network.has_code_importance):
            self.diffusion.set_importance(network.code_importance.cpu())
        return self.diffusion

    # -- training -------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        inputs = self.token_inputs(batch)
        context, context_mask = self.encode_captions(self.drop_captions(inputs.captions))

        def logits(tokens: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(tokens, t, context, context_mask, inputs.valid)

        loss = self.objective().loss(logits, inputs.codes, inputs.valid, inputs.given)
        extra = self.auxiliary_losses(inputs, context, context_mask)
        total = loss + sum(extra.values()) if extra else loss
        batch_size = len(inputs.captions)
        guarded = self.guarded_loss(total, batch_size)  # None: non-finite, the step is skipped
        if guarded is not None:
            self.log("train/masked_ce", loss.detach(), batch_size=batch_size)
            for name, value in extra.items():
                self.log(f"train/{name}", value.detach(), batch_size=batch_size)
        return guarded

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = self.token_inputs(batch)
        context, context_mask = self.encode_captions(inputs.captions)
        network = self.sampling_network()
        generator = torch.Generator().manual_seed(batch_idx)

        def logits(tokens: Tensor, t: Tensor) -> Tensor:
            return network(tokens, t, context, context_mask, inputs.valid)

        loss = self.objective(network).loss(logits, inputs.codes, inputs.valid, inputs.given, generator=generator)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(inputs.captions))
        return loss

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate_codes(
        self,
        captions: list[str],
        valid: Tensor,  # (B, L) bool
        given_codes: Tensor | None = None,  # (B, L) long
        given: Tensor | None = None,  # (B, L) bool
        options: MaskedSamplingOptions | None = None,
        *,
        use_ema: bool = True,
        callback: Callable | None = None,
    ) -> Tensor:
        """Codes ``(B, L)`` for ``captions``: given positions exactly ``given_codes``, PAD 0.

        Classifier-free guidance evaluates the conditional and unconditional logits in one
        batched call (captions and null captions stacked, :class:`GuidedModel`).
        """
        options = options or MaskedSamplingOptions()
        network = self.sampling_network(use_ema)
        valid = valid.to(self.device)
        context, context_mask = self.encode_captions(list(captions))
        if options.cfg_scale != 1.0:
            null_context, null_mask = self.encode_captions([NULL_CAPTION] * len(captions))
            context, context_mask = stack_contexts(context, context_mask, null_context, null_mask)
            doubled_valid = torch.cat([valid, valid])

            def doubled(tokens: Tensor, t: Tensor) -> Tensor:
                return network(tokens, t, context, context_mask, doubled_valid)

            logits = GuidedModel(doubled, scale=options.cfg_scale)
        else:

            def logits(tokens: Tensor, t: Tensor) -> Tensor:
                return network(tokens, t, context, context_mask, valid)

        return self.objective(network).sample(
            logits, valid,
            None if given_codes is None else given_codes.to(self.device),
            None if given is None else given.to(self.device),
            steps=options.steps, temperature=options.temperature, top_k=options.top_k,
            confidence_noise=options.confidence_noise, priority_weight=options.priority_weight,
            generator=torch.Generator().manual_seed(options.seed), callback=callback,
        )
