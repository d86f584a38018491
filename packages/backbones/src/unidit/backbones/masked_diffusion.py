"""Absorbing-state masked discrete diffusion over code indices (motion VQ codes).

The forward process replaces a growing fraction ``gamma(t)`` of a sequence's
codes by an absorbing ``[mask]`` token (D3PM's absorbing state, Austin et al.
2021, §3; MaskGIT, Chang et al. 2022, §3.1); the network reads the partly
masked sequence and predicts every masked code with a cross-entropy loss. At
sampling time every free position starts masked and a few steps unmask the
most confident predictions, re-masking the rest (MaskGIT §3.2, MoMask's masked
transformer, Guo et al. CVPR 2024, §3.2: 10 steps).

Time runs like the rectified flow's: ``t = 0`` is the clean sequence, ``t = 1``
all masked. Two choices of *which* tokens get masked at ``t``:

- ``cosine`` (MoMask §3.2): ``gamma(t) = sin(pi t / 2)`` (MoMask's
  ``cos(pi tau / 2)`` with ``tau = 1 - t``), a uniformly random subset.
- ``priority`` (M2DM, Chi et al. 2023, "Priority-centric human motion
  generation in discrete latent space", §3.3): the same count, but the
  *least* informative tokens are masked first, so the most informative ones
  are masked last and the reverse process generates them first. Here a code's
  importance is its self-information under the training set's code
  frequencies, ``I(c) = -log p(c)`` (rare codes carry more information; common
  ones, such as the codes of standing still, carry less), rescaled to [0, 1]
  over the codebook; a token's masking score is ``I(code) + priority_noise * u``
  with ``u ~ U(0, 1)``, and at each ``t`` the ``n(t)`` lowest scores are
  masked. The noise keeps the order soft (``priority_noise`` -> inf gives the
  uniform order back). A task may add a text-relevance term to the scores by
  passing its own ``importance`` table.

Sampling ranks the predictions by log-probability of the drawn code (MoMask's
confidence order), plus ``priority_weight * I(code)`` for the priority
schedule, so informative codes are committed first as M2DM's reverse process
does. Positions in ``given`` (in-betweening, continuation) are never masked,
never re-predicted and come out bit for bit (MoMask users report edited
outputs changing the kept frames, MoMask issue #31: this sampler cannot).

Models are called as ``model_fn(tokens (B, L) long, t (B,)) -> logits (B, L, K)``
with ``K`` the codebook size and ``tokens == K`` meaning ``[mask]``;
classifier-free guidance wraps such a function with
:class:`unidit.backbones.guidance.GuidedModel` (logits are guided like
velocities).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LogitsFn = Callable[[Tensor, Tensor], Tensor]
SCHEDULES = ("cosine", "priority")

__all__ = ["SCHEDULES", "MaskedDiffusion", "code_importance", "mask_lowest", "mask_ratio", "masked_counts"]


def mask_ratio(t: Tensor) -> Tensor:
    """Fraction of tokens masked at time ``t`` (0 clean, 1 all masked): ``sin(pi t / 2)`` (MoMask's cosine)."""
    return torch.sin(0.5 * math.pi * t.clamp(0.0, 1.0))


def masked_counts(ratio: Tensor, free: Tensor) -> Tensor:
    """Tokens to mask ``(B,)``: ``ceil(ratio · free)``, at least one while any token is free, at most ``free``."""
    count = torch.ceil(ratio.double() * free.double()).long()  # (B,) double: no float rounding above the count
    return torch.minimum(count.clamp(min=1), free.long())


def mask_lowest(scores: Tensor, counts: Tensor, eligible: Tensor) -> Tensor:
    """``(B, L)`` bool: the ``counts[b]`` eligible positions of row ``b`` with the lowest ``scores`` ``(B, L)``."""
    scores = torch.where(eligible, scores.float(), torch.full_like(scores, math.inf, dtype=torch.float32))
    rank = scores.argsort(dim=1, stable=True).argsort(dim=1)  # (B, L) 0 = lowest score
    return (rank < counts[:, None]) & eligible


def code_importance(counts: Tensor, smoothing: float = 1.0) -> Tensor:
    """Self-information ``-log p(c)`` ``(K,)`` of each code from its counts ``(K,)`` (add-``smoothing`` estimate)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.dim() != 1 or bool((counts < 0).any()):
        raise ValueError(f"counts: expected non-negative code counts (K,), got shape {tuple(counts.shape)}")
    p = (counts + smoothing) / (counts.sum() + smoothing * counts.numel())
    return (-p.log()).float()


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device).to(device)


def _gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    u = _uniform(shape, generator, device).clamp(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


class MaskedDiffusion:
    """Masked (absorbing-state) discrete diffusion loss and confidence-ordered sampling.

    Args:
        codebook_size: ``K``; code ``K`` is the ``[mask]`` token (``mask_id``), so a model embeds ``K + 1`` ids.
        schedule: ``cosine`` (uniformly random masked subsets, MoMask) or ``priority`` (M2DM's
            importance order; needs :meth:`set_importance`).
        importance: per-code importance ``(K,)`` (e.g. :func:`code_importance` of training counts).
        priority_noise: weight of the uniform noise added to the [0, 1] importance in masking scores.
        label_smoothing: of the cross-entropy (MoMask uses 0.1).
    """

    def __init__(
        self,
        codebook_size: int,
        schedule: str = "cosine",
        importance: Tensor | None = None,
        priority_noise: float = 0.5,
        label_smoothing: float = 0.0,
    ) -> None:
        if codebook_size < 2:
            raise ValueError(f"codebook_size: expected at least 2 codes, got {codebook_size}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if priority_noise < 0:
            raise ValueError(f"priority_noise: expected a number >= 0, got {priority_noise}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: expected a number in [0, 1), got {label_smoothing}")
        self.codebook_size = int(codebook_size)
        self.schedule = schedule
        self.priority_noise = float(priority_noise)
        self.label_smoothing = float(label_smoothing)
        self.importance: Tensor | None = None  # (K,) rescaled to [0, 1]
        if importance is not None:
            self.set_importance(importance)

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    def set_importance(self, importance: Tensor) -> None:
        """Per-code importance ``(K,)``; stored rescaled to [0, 1] (constant tables become all zeros)."""
        importance = torch.as_tensor(importance, dtype=torch.float32).flatten()
        if importance.numel() != self.codebook_size or not bool(torch.isfinite(importance).all()):
            raise ValueError(f"importance: expected {self.codebook_size} finite values (one per code), "
                             f"got {importance.numel()}")
        span = (importance.max() - importance.min()).clamp(min=1e-12)
        self.importance = (importance - importance.min()) / span  # (K,)

    def code_priority(self, codes: Tensor) -> Tensor:
        """[0, 1] importance of each code of ``codes`` (any shape, ids < K); zeros without a table."""
        if self.importance is None:
            if self.schedule == "priority":
                raise ValueError("the priority schedule needs code importance: call set_importance(code_importance("
                                 "counts)) with the training set's code counts first")
            return torch.zeros(codes.shape, device=codes.device)
        table = self.importance.to(codes.device)
        return table[codes.clamp(0, self.codebook_size - 1)]

    # -- forward process ---------------------------------------------------------------
    def mask_scores(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(B, L)`` masking order: at every t the lowest scores are the masked ones."""
        noise = _uniform(tuple(codes.shape), generator, codes.device)  # (B, L)
        if self.schedule == "cosine":
            return noise
        return self.code_priority(codes) + self.priority_noise * noise

    def corrupt(
        self,
        codes: Tensor,  # (B, L) long
        t: Tensor,  # (B,)
        valid: Tensor | None = None,  # (B, L) bool, real (non-PAD) positions
        given: Tensor | None = None,  # (B, L) bool, positions never masked
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Masked tokens ``(B, L)`` (``mask_id`` where masked) and the masked positions ``(B, L)`` bool."""
        eligible = _free_positions(codes, valid, given)  # (B, L)
        counts = masked_counts(mask_ratio(t.to(codes.device)), eligible.sum(dim=1))  # (B,)
        masked = mask_lowest(self.mask_scores(codes, generator), counts, eligible)  # (B, L)
        return torch.where(masked, torch.full_like(codes, self.mask_id), codes), masked

    def draw(
        self,
        codes: Tensor,  # (B, L) long in [0, K)
        valid: Tensor | None = None,  # (B, L) bool
        given: Tensor | None = None,  # (B, L) bool
        generator: torch.Generator | None = None,
        t: Tensor | None = None,  # (B,); default U(0, 1)
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The loss's first half: levels ``t`` (B,), masked tokens (B, L) and masked positions (B, L)."""
        _check_codes(codes, self.codebook_size, "codes")
        if t is None:
            t = _uniform((codes.shape[0],), generator, codes.device)  # (B,)
        tokens, masked = self.corrupt(codes, t, valid, given, generator)  # (B, L), (B, L)
        return t, tokens, masked

    def token_errors(self, logits: Tensor, codes: Tensor, masked: Tensor) -> Tensor:
        """The loss's second half: ``(B, L)`` cross-entropy of each masked position's code, 0 elsewhere."""
        if logits.shape != (*codes.shape, self.codebook_size):
            raise ValueError(f"model_fn: expected logits {(*codes.shape, self.codebook_size)}, got {tuple(logits.shape)}")
        ce = F.cross_entropy(logits.float().transpose(1, 2), codes, reduction="none",
                             label_smoothing=self.label_smoothing)  # (B, L)
        return torch.where(masked, ce, torch.zeros_like(ce))  # nothing outside the masked tokens reaches the loss

    def loss(
        self,
        model_fn: LogitsFn,
        codes: Tensor,  # (B, L) long in [0, K)
        valid: Tensor | None = None,  # (B, L) bool
        given: Tensor | None = None,  # (B, L) bool
        generator: torch.Generator | None = None,
        t: Tensor | None = None,  # (B,); default U(0, 1)
    ) -> Tensor:
        """Cross-entropy of the masked positions' codes, averaged over every masked token of the batch.

        :meth:`draw` then :meth:`token_errors`; a joint step calls the two halves around one
        backbone call shared with other tasks.
        """
        t, tokens, masked = self.draw(codes, valid, given, generator, t)
        ce = self.token_errors(model_fn(tokens, t), codes, masked)  # (B, L)
        return ce.sum() / masked.sum().clamp(min=1)

    # -- reverse process ---------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        model_fn: LogitsFn,
        valid: Tensor,  # (B, L) bool: positions of each sequence (False = PAD)
        given_codes: Tensor | None = None,  # (B, L) long, read where ``given``
        given: Tensor | None = None,  # (B, L) bool
        steps: int = 10,
        temperature: float = 1.0,
        top_k: int = 0,
        confidence_noise: float = 0.0,
        priority_weight: float | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """Codes ``(B, L)``: given positions exactly ``given_codes``, PAD positions 0, the rest generated.

        Step ``k`` of ``steps`` predicts every masked position (codes drawn with ``temperature``,
        0 = greedy, from the ``top_k`` most likely, 0 = all), then keeps the
        ``ceil(gamma(1 - (k + 1) / steps) · free)`` least confident of them masked (at least one
        fewer than before). ``confidence_noise`` adds Gumbel noise to the confidences, annealed
        with the masking level (MaskGIT's choice temperature). ``priority_weight`` (default 1 for
        the priority schedule, 0 for cosine) adds the drawn code's [0, 1] importance to its rank.
        """
        if steps < 1:
            raise ValueError(f"steps: expected an integer >= 1, got {steps}")
        if temperature < 0 or top_k < 0 or confidence_noise < 0:
            raise ValueError(f"temperature, top_k and confidence_noise must be >= 0, got {temperature}, {top_k}, "
                             f"{confidence_noise}")
        valid = valid.bool()
        if given is None:
            given = torch.zeros_like(valid)
            given_codes = torch.zeros(valid.shape, dtype=torch.long, device=valid.device)
        elif given_codes is None or given_codes.shape != valid.shape or given.shape != valid.shape:
            raise ValueError(f"given and given_codes: expected two (B, L) = {tuple(valid.shape)} tensors")
        given = given.bool() & valid
        if bool(given.any()):
            _check_codes(given_codes[given], self.codebook_size, "given_codes")
        if priority_weight is None:
            priority_weight = 1.0 if self.schedule == "priority" else 0.0
        free = valid & ~given  # (B, L)
        num_free = free.sum(dim=1)  # (B,)
        tokens = torch.where(given, given_codes, torch.full_like(given_codes, self.mask_id))  # (B, L)
        batch = valid.shape[0]
        for step in range(steps):
            level = 1.0 - step / steps
            masked = free & (tokens == self.mask_id)  # (B, L)
            if not bool(masked.any()):
                break
            t = torch.full((batch,), level, device=valid.device)  # (B,)
            logits = model_fn(tokens, t).float()  # (B, L, K)
            drawn = self._draw(logits, temperature, top_k, generator)  # (B, L)
            confidence = logits.log_softmax(dim=-1).gather(-1, drawn[..., None])[..., 0]  # (B, L)
            if priority_weight:
                confidence = confidence + priority_weight * self.code_priority(drawn)
            next_level = 1.0 - (step + 1) / steps
            if confidence_noise and next_level > 0:
                confidence = confidence + confidence_noise * next_level * _gumbel(tuple(drawn.shape), generator,
                                                                                  drawn.device)
            keep = torch.ceil(mask_ratio(torch.tensor(next_level)).double() * num_free.double()).long()  # (B,)
            keep = torch.minimum(keep, (masked.sum(dim=1) - 1).clamp(min=0))  # unmask at least one per step
            still = mask_lowest(confidence, keep, masked)  # (B, L)
            tokens = torch.where(masked & ~still, drawn, tokens)  # (B, L)
            if callback is not None:
                callback(step, tokens)
        tokens = torch.where(given, given_codes, tokens)  # (B, L) given codes bit for bit
        return torch.where(valid, tokens, torch.zeros_like(tokens))

    def _draw(self, logits: Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> Tensor:
        """Codes ``(B, L)`` drawn from ``logits`` ``(B, L, K)`` by Gumbel-max (temperature 0: argmax)."""
        if top_k and top_k < logits.shape[-1]:
            threshold = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, L, 1)
            logits = logits.masked_fill(logits < threshold, -math.inf)
        if temperature == 0:
            return logits.argmax(dim=-1)
        return (logits / temperature + _gumbel(tuple(logits.shape), generator, logits.device)).argmax(dim=-1)


def _free_positions(codes: Tensor, valid: Tensor | None, given: Tensor | None) -> Tensor:
    eligible = torch.ones(codes.shape, dtype=torch.bool, device=codes.device) if valid is None else valid.bool()
    return eligible if given is None else eligible & ~given.bool()


def _check_codes(codes: Tensor, codebook_size: int, name: str) -> None:
    if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name}: expected integer code indices, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(f"{name}: expected code indices in [0, {codebook_size}), got [{int(codes.min())}, "
                         f"{int(codes.max())}]")
