"""Text-to-audio as rectified flow over 1D audio-VAE latents (EzAudio, Hai et al. 2024).

Training: each batch holds VAE latents ``(C, T_i)`` of clips of different
lengths; they are packed into one padded token sequence, and for a fraction of
clips a span is regenerated while the rest is held clean (per-token t = 0,
LTX-Video §3.4), so the same network in-paints (EzAudio §3.5) and continues
clips.  Sampling decodes the latents with the frozen VAE named by ``vae``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from unidit.tasks.t2a.denoiser import LatentAudioDenoiser, LatentDenoiserConfig, conditioning_for
from unidit.tokenizers.audio_vae import AudioVAE
from unidit.training import frozen_vae
from unidit.training.flow_task import FlowInputs, FlowMatchingTask, check_mixture
from unidit.training.frozen_vae import FrozenVAETask
from unidit.training.latent_codec import decode_latents, encode_clips, pad_to_multiple
from unidit.training.sampling import SamplingOptions


@dataclass
class Inpaint:
    """Regenerate ``[start, end)`` seconds of ``audio`` (float32 mono at the VAE's rate), keep the rest."""

    audio: np.ndarray
    start: float
    end: float


class T2ATask(FrozenVAETask, FlowMatchingTask):
    """Generates sound from captions; in-paints spans and continues clips.

    Args:
        vae: folder of the audio VAE (``save_pretrained`` export) whose latents are
            diffused and which decodes samples; None only for latent-level use (tests).
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"arch": "mmdit", "depth": 8}``.
        latent_channels: channels of the VAE latents (checked against ``vae``).
        patch_size: latent frames per token.
        inpaint_prob: fraction of training clips where a random span is regenerated and
            the rest held clean (teaches in-painting).
        continuation_prob: fraction of training clips where a random prefix is held clean
            and the rest regenerated (teaches continuation).
        **flow_options: the shared options of ``FlowMatchingTask`` (lr, EMA, caption dropout, ...).
    """

    def __init__(
        self,
        vae: str | None = None,
        preset: str = "small",
        backbone: dict | None = None,
        latent_channels: int = 16,
        patch_size: int = 2,
        inpaint_prob: float = 0.1,
        continuation_prob: float = 0.1,
        **flow_options,
    ):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        check_mixture(inpaint_prob=inpaint_prob, continuation_prob=continuation_prob)
        config = LatentDenoiserConfig(preset, dict(backbone or {}), latent_channels, patch_size)
        self.denoiser = LatentAudioDenoiser(config)
        self.vae = load_frozen_vae(vae, latent_channels) if vae is not None else None
        self.inpaint_prob = inpaint_prob
        self.continuation_prob = continuation_prob
        self._conditioning_rng = torch.Generator().manual_seed(0)

    # -- training -----------------------------------------------------------------
    def flow_inputs(self, batch: dict) -> FlowInputs:
        packed = self.pack_whole_patches(batch["latents"])
        held = self._random_held_tokens(packed.data_mask) if self.training else None
        return FlowInputs(x0=packed.tokens, captions=list(batch["captions"]), mask=packed.data_mask,
                          cond=conditioning_for(packed, held))

    def _random_held_tokens(self, data_mask: Tensor) -> Tensor | None:
        """(B, L) tokens held clean: for chosen clips, everything outside a regenerated span [s, e).

        In-painting draws a span of 10-50% of the clip anywhere; continuation
        regenerates everything after a prefix of 20-70%.
        """
        g = self._conditioning_rng
        batch = data_mask.shape[0]
        draw = torch.rand(batch, generator=g)  # (B,)
        inpaint = draw < self.inpaint_prob
        continuation = (draw >= self.inpaint_prob) & (draw < self.inpaint_prob + self.continuation_prob)
        if not bool((inpaint | continuation).any()):
            return None
        n = data_mask.sum(dim=1).cpu().float()  # (B,) data tokens per clip
        span = torch.rand(batch, generator=g) * 0.4 + 0.1  # (B,)
        where = torch.rand(batch, generator=g)  # (B,)
        prefix = torch.rand(batch, generator=g) * 0.5 + 0.2  # (B,)
        start = torch.where(inpaint, (where * (1 - span) * n).floor(), (prefix * n).floor())  # (B,)
        end = torch.where(inpaint, start + (span * n).ceil(), n)  # (B,)
        index = torch.arange(data_mask.shape[1]).float()[None]  # (1, L)
        outside = (index < start[:, None]) | (index >= end[:, None])  # (B, L)
        chosen = (inpaint | continuation)[:, None]  # (B, 1)
        return (outside & chosen).to(data_mask.device) & data_mask

    # -- sampling -------------------------------------------------------------------
    def frames_for(self, seconds: float) -> int:
        """Latent frames holding ``seconds`` of audio, rounded up to whole patches."""
        vae = self.require_vae()
        return self.whole_patch_frames(seconds, vae.hop_length, vae.sample_rate)

    @torch.no_grad()
    def sample_audio(
        self,
        captions: list[str],
        seconds: float | list[float] = 3.0,
        *,
        options: SamplingOptions | None = None,
        inpaint: Inpaint | None = None,
        continuation: np.ndarray | None = None,
        use_ema: bool = True,
    ) -> list[np.ndarray]:
        """Generate one float32 mono clip per caption at the VAE's sample rate, drawn with ``options``.

        ``seconds`` is one duration for all or one per caption.  With ``inpaint``
        every caption regenerates the span of the same clip (its length is the
        clip's); with ``continuation`` (a clip) ``seconds`` of new audio follow it.
        """
        latents, lengths = self.sample_latents(captions, seconds, options=options, inpaint=inpaint,
                                               continuation=continuation, use_ema=use_ema)
        audio = decode_latents(self.require_vae(), latents)
        return [clip[:length] for clip, length in zip(audio, lengths)]

    @torch.no_grad()
    def sample_latents(
        self,
        captions: list[str],
        seconds: float | list[float] = 3.0,
        *,
        options: SamplingOptions | None = None,
        inpaint: Inpaint | None = None,
        continuation: np.ndarray | None = None,
        use_ema: bool = True,
        known: list[Tensor] | None = None,
        held_frames: list[Tensor] | None = None,
    ) -> tuple[list[Tensor], list[int]]:
        """Normalised latents ``(C, T_i)`` per caption and the audio length (samples) each stands for.

        ``known`` / ``held_frames`` (per caption: latents ``(C, T_i)`` and a bool ``(T_i,)``
        of frames kept bit-identical) give in-painting at the latent level directly;
        ``inpaint`` / ``continuation`` build them from audio.
        """
        options = options or SamplingOptions()
        if not captions:
            raise ValueError("sample_latents needs at least one caption")
        if known is None:
            known, held_frames, lengths = self._plan(captions, seconds, inpaint, continuation)
        else:
            hop = self.vae.hop_length if self.vae is not None else 1
            lengths = [z.shape[1] * hop for z in known]
        return self.sample_around(captions, known, held_frames, options, use_ema), lengths

    def _plan(self, captions, seconds, inpaint: Inpaint | None, continuation: np.ndarray | None):
        """Per caption: known latents (C, T_i) (zeros where generated), held frames (T_i,), audio length."""
        if inpaint is not None and continuation is not None:
            raise ValueError("give either inpaint or continuation, not both")
        vae = self.require_vae()
        channels, p, hop = self.denoiser.config.latent_channels, self.patch_size, vae.hop_length
        if inpaint is not None:
            duration = len(inpaint.audio) / vae.sample_rate
            if not 0.0 <= inpaint.start < inpaint.end <= duration + 1e-9:
                raise ValueError(f"in-painting span [{inpaint.start}, {inpaint.end}) s must lie inside the "
                                 f"clip of {duration:.3f} s with start < end")
            clip = encode_clips(vae, [pad_to_multiple(inpaint.audio, hop * p)])[0]  # (C, T)
            frames = torch.arange(clip.shape[1])
            start = math.floor(inpaint.start * vae.sample_rate / hop / p) * p  # widened to whole patches
            end = math.ceil(inpaint.end * vae.sample_rate / hop / p) * p
            held = (frames < start) | (frames >= end)  # (T,)
            count = len(captions)
            return [clip] * count, [held] * count, [len(inpaint.audio)] * count
        durations = [float(seconds)] * len(captions) if np.isscalar(seconds) else [float(s) for s in seconds]
        if len(durations) != len(captions) or min(durations) <= 0:
            raise ValueError(
                f"seconds must be one positive duration or one per caption ({len(captions)}), got {seconds}"
            )
        new_frames = [self.frames_for(s) for s in durations]
        if continuation is None:
            known = [torch.zeros(channels, n) for n in new_frames]
            return known, [torch.zeros(n, dtype=torch.bool) for n in new_frames], [
                round(s * vae.sample_rate) for s in durations]
        usable = len(continuation) - len(continuation) % (hop * p)  # whole patches of the prefix
        if usable == 0:
            raise ValueError(f"the clip to continue has {len(continuation)} samples; need at least {hop * p}")
        prefix = encode_clips(vae, [np.asarray(continuation[:usable], dtype=np.float32)])[0]  # (C, Tp)
        known = [torch.cat([prefix, torch.zeros(channels, n)], dim=1) for n in new_frames]
        held = [torch.arange(z.shape[1]) < prefix.shape[1] for z in known]
        return known, held, [usable + round(s * vae.sample_rate) for s in durations]


def load_frozen_vae(path: str, latent_channels: int) -> AudioVAE:
    """The audio VAE saved at ``path``, frozen, checked against the denoiser's channel count."""
    return frozen_vae.load_frozen_vae(AudioVAE, path, latent_channels)
