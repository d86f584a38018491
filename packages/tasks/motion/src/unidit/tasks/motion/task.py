"""Text-to-motion as masked discrete diffusion over motion VQ codes (MoMask / M2DM on the shared backbone).

Training: each batch holds the code sequences ``(N_i,)`` of clips encoded once by
the frozen motion VQ-VAE (:class:`~unidit.tokenizers.motion.MotionVQVAE`, 4
frames a code); they are padded into ``(B, L)`` with a valid mask, a level ``t``
masks ``gamma(t)`` of each clip's codes (M2DM's priority order by default, or
MoMask's uniform cosine one) and the denoiser predicts them. For a fraction of
clips a span (in-betweening) or everything after a prefix (continuation) is
to be generated and the rest is given, never masked, so one network also
completes motions (MoMask §4.3 "temporal inpainting"). The length predictor
learns each clip's code count from its caption in the same step.

Sampling: lengths come from a requested duration or the length predictor;
codes are unmasked in confidence order (10 steps, CFG on the logits), given
codes are copied out bit for bit, and the VQ decoder turns codes into
HumanML3D features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from unidit.tasks.motion.denoiser import MotionDenoiser, MotionDenoiserConfig
from unidit.tokenizers.motion import MotionVQVAE
from unidit.training.flow_task import check_mixture
from unidit.training.masked_task import MaskedDiffusionTask, MaskedSamplingOptions, TokenInputs


@dataclass
class Inbetween:
    """Regenerate ``[start, end)`` seconds of ``features`` ((T, D), not normalised), keep the rest exactly."""

    features: np.ndarray
    start: float
    end: float


class MotionTask(MaskedDiffusionTask):
    """Generates HumanML3D-style motion from captions; in-betweens and continues motions.

    Args:
        vqvae: folder of the motion VQ-VAE (``save_pretrained`` export of ``unidit fit motion-vq``)
            whose codes are diffused and which decodes samples; None only for code-level use (tests).
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"arch": "mmdit", "depth": 8}``.
        codebook_size: codes of the VQ-VAE (checked against ``vqvae``).
        embed_dim: width of the code embedding (0 = the backbone's width).
        max_tokens: longest motion in codes (the length predictor's classes).
        frames_per_code: frames a code stands for (checked against ``vqvae``; 4 in T2M-GPT / MoMask).
        fps: frames per second of the features (HumanML3D 20, KIT-ML 12.5).
        length_weight: weight of the length predictor's cross-entropy in the loss.
        inbetween_prob: fraction of training clips where a span is generated and the rest given.
        continuation_prob: fraction of training clips where a prefix is given and the rest generated.
        schedule / priority_noise / label_smoothing: the objective (see :class:`MaskedDiffusionTask`).
        **task_options: the shared options (lr, EMA, caption dropout, text encoder, ...).
    """

    def __init__(
        self,
        vqvae: str | None = None,
        preset: str = "small",
        backbone: dict | None = None,
        codebook_size: int = 512,
        embed_dim: int = 0,
        max_tokens: int = 49,
        frames_per_code: int = 4,
        fps: float = 20.0,
        length_weight: float = 0.1,
        inbetween_prob: float = 0.1,
        continuation_prob: float = 0.1,
        schedule: str = "priority",
        priority_noise: float = 0.5,
        label_smoothing: float = 0.1,
        **task_options,
    ):
        super().__init__(codebook_size, schedule, priority_noise, label_smoothing, **task_options)
        self.save_hyperparameters()
        check_mixture(inbetween_prob=inbetween_prob, continuation_prob=continuation_prob)
        config = MotionDenoiserConfig(preset, dict(backbone or {}), codebook_size, embed_dim, max_tokens)
        self.denoiser = MotionDenoiser(config)
        self.vqvae = load_frozen_vqvae(vqvae, codebook_size, frames_per_code) if vqvae is not None else None
        self.frames_per_code = int(frames_per_code)
        self.fps = float(fps)
        self.length_weight = length_weight
        self.inbetween_prob = inbetween_prob
        self.continuation_prob = continuation_prob
        self._given_rng = torch.Generator().manual_seed(0)

    def train(self, mode: bool = True) -> "MotionTask":
        super().train(mode)
        if self.vqvae is not None:
            self.vqvae.eval()  # frozen: never in training mode
        return self

    def on_fit_start(self) -> None:
        """Take the training set's code counts for the priority schedule from the data module."""
        data = getattr(self.trainer, "datamodule", None)
        if data is not None and hasattr(data, "code_counts") and not self.has_code_importance:
            self.set_code_counts(data.code_counts(self.hparams.codebook_size))

    # -- training -----------------------------------------------------------------
    def token_inputs(self, batch: dict) -> TokenInputs:
        codes, valid = pad_codes(batch["codes"], self.hparams.max_tokens)
        codes, valid = codes.to(self.device), valid.to(self.device)
        given = self._random_given(valid) if self.training else None
        return TokenInputs(codes, list(batch["captions"]), valid, given)

    def _random_given(self, valid: Tensor) -> Tensor | None:
        """(B, L) given codes of chosen clips: everything outside a span of 20-60% (in-betweening),
        or a prefix of 20-60% (continuation)."""
        g = self._given_rng
        batch = valid.shape[0]
        draw = torch.rand(batch, generator=g)  # (B,)
        inbetween = draw < self.inbetween_prob
        continuation = (draw >= self.inbetween_prob) & (draw < self.inbetween_prob + self.continuation_prob)
        if not bool((inbetween | continuation).any()):
            return None
        n = valid.sum(dim=1).cpu().float()  # (B,)
        span = torch.rand(batch, generator=g) * 0.4 + 0.2  # (B,) fraction generated / given
        where = torch.rand(batch, generator=g)  # (B,)
        start = torch.where(inbetween, (where * (1 - span) * n).floor(), torch.zeros(batch))  # (B,)
        end = torch.where(inbetween, start + (span * n).ceil(), (span * n).ceil())  # (B,)
        index = torch.arange(valid.shape[1]).float()[None]  # (1, L)
        inside = (index >= start[:, None]) & (index < end[:, None])  # (B, L)
        given = torch.where(inbetween[:, None], ~inside, inside) & (inbetween | continuation)[:, None]
        return given.to(valid.device) & valid

    def sample_auxiliary_losses(self, inputs: TokenInputs, context: Tensor, context_mask: Tensor,
                                network: torch.nn.Module | None = None) -> dict[str, Tensor]:
        """Each clip's length-predictor cross-entropy on its code count ``(B,)``, weighted by ``length_weight``."""
        if not self.length_weight:
            return {}
        logits = (network or self.denoiser).length_logits(context, context_mask)  # (B, max_tokens)
        target = inputs.valid.sum(dim=1) - 1  # (B,) class i = i + 1 codes
        loss = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")  # (B,)
        return {"length_ce": self.length_weight * loss}

    # -- the tokenizer ----------------------------------------------------------------
    def require_vqvae(self) -> MotionVQVAE:
        if self.vqvae is None:
            raise ValueError("this MotionTask has no motion VQ-VAE (model.vqvae is None); it cannot encode or "
                             "decode motion")
        return self.vqvae

    def encode_features(self, clips: list[np.ndarray | Tensor], names: list[str] | None = None) -> list[Tensor]:
        """Code ids ``(T_i // 4,)`` of feature clips ``(T_i, D)`` (not normalised; cropped to whole codes)."""
        return encode_motion(self.require_vqvae(), clips, names)

    @torch.no_grad()
    def decode_codes(self, codes: list[Tensor]) -> list[np.ndarray]:
        """Features ``(4 N_i, D)`` (not normalised, float32) of code sequences ``(N_i,)``."""
        vq = self.require_vqvae()
        return [vq.denormalize(vq.decode(c.to(vq.mean.device).long()[None]))[0].cpu().numpy().astype(np.float32)
                for c in codes]

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def predict_lengths(self, captions: list[str], use_ema: bool = True) -> list[int]:
        """The most likely length in codes for each caption."""
        context, context_mask = self.encode_captions(list(captions))
        logits = self.sampling_network(use_ema).length_logits(context, context_mask)  # (B, max_tokens)
        return (logits.argmax(dim=-1) + 1).tolist()

    def tokens_for(self, seconds: float) -> int:
        """Codes holding ``seconds`` of motion (at least one, at most ``max_tokens``)."""
        if not seconds > 0:
            raise ValueError(f"seconds: expected a positive duration, got {seconds}")
        tokens = round(seconds * self.fps / self.frames_per_code)
        return int(min(max(tokens, 1), self.hparams.max_tokens))

    @torch.no_grad()
    def sample_codes(
        self,
        captions: list[str],
        lengths: list[int] | None = None,
        *,
        known: list[Tensor] | None = None,
        given: list[Tensor] | None = None,
        options: MaskedSamplingOptions | None = None,
        use_ema: bool = True,
    ) -> list[Tensor]:
        """Code sequences ``(N_i,)`` per caption.

        ``lengths`` (codes) default to the length predictor's; ``known`` / ``given`` (per caption:
        codes ``(N_i,)`` and a bool ``(N_i,)`` of codes kept exactly) fix parts of the sequence.
        """
        if not captions:
            raise ValueError("sample_codes needs at least one caption")
        if known is not None:
            if given is None or len(known) != len(captions) or len(given) != len(captions):
                raise ValueError(f"known and given: expected one codes (N_i,) and one bool (N_i,) per caption "
                                 f"({len(captions)})")
            lengths = [len(k) for k in known]
        elif lengths is None:
            lengths = self.predict_lengths(captions, use_ema)
        if len(lengths) != len(captions) or min(lengths) < 1:
            raise ValueError(f"lengths: expected one positive code count per caption ({len(captions)}), got {lengths}")
        length = max(lengths)
        valid = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # (B, L)
        given_codes, given_mask = None, None
        if known is not None:
            given_codes, _ = pad_codes(known, max(self.hparams.max_tokens, length))
            given_mask = torch.zeros_like(valid)
            for row, (k, g) in enumerate(zip(known, given)):
                if g.shape != k.shape:
                    raise ValueError(f"given[{row}]: expected a bool mask of shape {tuple(k.shape)}, got {tuple(g.shape)}")
                given_mask[row, : len(g)] = g.bool()
        codes = self.generate_codes(captions, valid, given_codes, given_mask, options, use_ema=use_ema)  # (B, L)
        return [row[:n].cpu() for row, n in zip(codes, lengths)]

    @torch.no_grad()
    def sample_motion(
        self,
        captions: list[str],
        seconds: float | list[float] | None = None,
        *,
        options: MaskedSamplingOptions | None = None,
        inbetween: Inbetween | None = None,
        continuation: np.ndarray | None = None,
        use_ema: bool = True,
    ) -> list[np.ndarray]:
        """HumanML3D features ``(T_i, D)`` per caption (not normalised).

        ``seconds``: one duration for all, one per caption, or None (the length predictor). With
        ``inbetween`` every caption regenerates the span of the same clip; with ``continuation``
        (features ``(T, D)``) ``seconds`` of new motion follow it (None: up to ``max_tokens``).
        """
        if inbetween is not None and continuation is not None:
            raise ValueError("give either inbetween or continuation, not both")
        count = len(captions)
        if inbetween is not None:
            duration = len(inbetween.features) / self.fps
            if not 0.0 <= inbetween.start < inbetween.end <= duration + 1e-9:
                raise ValueError(f"in-betweening span [{inbetween.start}, {inbetween.end}) s must lie inside the "
                                 f"clip of {duration:.3f} s with start < end")
            clip = self.encode_features([inbetween.features], ["inbetween.features"])[0]  # (N,)
            index = torch.arange(len(clip))
            first = math.floor(inbetween.start * self.fps / self.frames_per_code)  # widened to whole codes
            last = math.ceil(inbetween.end * self.fps / self.frames_per_code)
            held = (index < first) | (index >= last)  # (N,)
            codes = self.sample_codes(captions, known=[clip] * count, given=[held] * count, options=options,
                                      use_ema=use_ema)
            return self.decode_codes(codes)
        if seconds is None:
            lengths = None
        else:
            durations = [float(seconds)] * count if np.isscalar(seconds) else [float(s) for s in seconds]
            if len(durations) != count:
                raise ValueError(f"seconds: expected one duration or one per caption ({count}), got {seconds}")
            lengths = [self.tokens_for(s) for s in durations]
        if continuation is None:
            return self.decode_codes(self.sample_codes(captions, lengths, options=options, use_ema=use_ema))
        prefix = self.encode_features([continuation], ["continuation"])[0]  # (Np,)
        room = self.hparams.max_tokens - len(prefix)
        if room < 1:
            raise ValueError(f"continuation: the prefix has {len(prefix)} codes; max_tokens={self.hparams.max_tokens} "
                             "leaves no room for new motion")
        new = [room] * count if lengths is None else [min(n, room) for n in lengths]
        known = [torch.cat([prefix, torch.zeros(n, dtype=torch.long)]) for n in new]
        held = [torch.arange(len(k)) < len(prefix) for k in known]
        codes = self.sample_codes(captions, known=known, given=held, options=options, use_ema=use_ema)
        return self.decode_codes(codes)


@torch.no_grad()
def encode_motion(vq: MotionVQVAE, clips: list[np.ndarray | Tensor], names: list[str] | None = None) -> list[Tensor]:
    """Code ids ``(T_i // f,)`` of feature clips ``(T_i, D)`` (not normalised), each cropped to whole codes
    of ``f = vq.frames_per_code`` frames; ``names`` name the clips in errors."""
    codes = []
    for i, clip in enumerate(clips):
        where = names[i] if names else f"clip {i}"
        x = check_features(clip, vq.config.feature_dim, vq.frames_per_code, where)
        usable = x.shape[0] - x.shape[0] % vq.frames_per_code
        normalised = vq.normalize(x[:usable].to(vq.mean))[None]  # (1, T, D)
        codes.append(vq.encode(normalised)[0].long().cpu())  # (T / f,)
    return codes


def pad_codes(codes: list[Tensor], max_tokens: int | None = None) -> tuple[Tensor, Tensor]:
    """Code sequences ``(N_i,)`` -> padded ``(B, L)`` (0 at PAD) and the valid mask ``(B, L)``.

    Sequences longer than ``max_tokens`` are cut to it.
    """
    if not codes:
        raise ValueError("pad_codes: expected at least one code sequence")
    codes = [torch.as_tensor(c).long().flatten()[:max_tokens] for c in codes]
    if min(len(c) for c in codes) < 1:
        raise ValueError("pad_codes: a code sequence is empty (a clip shorter than one code)")
    length = max(len(c) for c in codes)
    padded = torch.zeros(len(codes), length, dtype=torch.long)
    valid = torch.zeros(len(codes), length, dtype=torch.bool)
    for row, c in enumerate(codes):
        padded[row, : len(c)] = c
        valid[row, : len(c)] = True
    return padded, valid


def check_features(clip: np.ndarray | Tensor, dim: int, frames_per_code: int, where: str) -> Tensor:
    """``clip`` as a float32 tensor ``(T, dim)``; a ValueError naming ``where`` for a wrong width,
    NaN / Inf frames, or fewer frames than one code holds."""
    x = torch.as_tensor(np.asarray(clip, dtype=np.float32) if not isinstance(clip, Tensor) else clip).float()
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{where}: expected motion features (T, {dim}), got {tuple(x.shape)} "
                         f"({dim} = HumanML3D 263 / KIT-ML 251, the VQ-VAE's feature_dim)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{where}: features contain NaN or infinite values")
    if x.shape[0] < frames_per_code:
        raise ValueError(f"{where}: {x.shape[0]} frames is shorter than one code ({frames_per_code} frames)")
    return x


def load_frozen_vqvae(path: str, codebook_size: int, frames_per_code: int | None = None) -> MotionVQVAE:
    """The motion VQ-VAE saved at ``path``, frozen, checked against the task's codebook and code rate."""
    from pathlib import Path

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"motion VQ-VAE not found: {folder} (expected config.json + model.safetensors, "
                                "e.g. <run>/model of `unidit fit motion-vq`)")
    vq = MotionVQVAE.from_pretrained(str(folder)).eval().requires_grad_(False)
    if vq.config.codebook_size != codebook_size:
        raise ValueError(f"the motion VQ-VAE at {folder} has {vq.config.codebook_size} codes; "
                         f"model.codebook_size is {codebook_size}")
    if frames_per_code is not None and vq.frames_per_code != frames_per_code:
        raise ValueError(f"the motion VQ-VAE at {folder} has {vq.frames_per_code} frames per code; "
                         f"model.frames_per_code is {frames_per_code}")
    if vq.config.num_quantizers != 1:
        raise ValueError(f"the motion VQ-VAE at {folder} is residual ({vq.config.num_quantizers} quantizers); "
                         "the motion task diffuses one code per token (train it with num_quantizers: 1)")
    return vq
