"""Text-to-speech as rectified flow over audio-VAE latents (SimpleSpeech 2, F5-TTS).

Training (F5-TTS, Chen et al. 2024, §3.1-3.2; SimpleSpeech 2, Yang et al.
2024, §3): a batch holds the VAE latents ``(C, T_i)`` of utterances of
different lengths and their lines (transcript + voice).  They are packed into
one padded token sequence; for a fraction ``prompt_prob`` of utterances a
prefix of 10-40% is held clean (per-token t = 0, the kit's held tokens) while
the rest is generated from the *whole* transcript, which is what prompting
with a reference clip asks of the model at sampling time (F5-TTS's
infilling objective, with the known audio at the start).  The voice is a
learned speaker embedding, dropped to "unknown" for ``speaker_dropout`` of the
lines so a prompt alone can carry it.  Two sentence-duration predictors
(:mod:`unidit.tasks.tts.duration`) train beside the flow loss on the same text
encoding.

Sampling: the total duration comes from ``seconds`` or a predictor (scaled by
``speed``); with a prompt, the prompt's latents stand first in the sequence at
t = 0 — they come out bit-identical — its transcript is prefixed to the text,
and the predicted duration of the new text is scaled by the prompt's measured
speaking rate.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from unidit.tasks.tts.denoiser import TTSDenoiser, TTSDenoiserConfig
from unidit.tasks.tts.duration import PREDICTORS, duration_losses
from unidit.tasks.tts.frontend import Line, TextFrontend
from unidit.tasks.tts.speakers import SpeakerTable
from unidit.tasks.tts.text import TextTokenizer
from unidit.tokenizers.audio_vae import AudioVAE
from unidit.training import frozen_vae
from unidit.training.flow_task import FlowInputs, FlowMatchingTask, check_mixture
from unidit.training.frozen_vae import FrozenVAETask
from unidit.training.latent_codec import decode_latents, encode_clips
from unidit.training.padded_conditioning import conditioning_for
from unidit.training.sampling import SamplingOptions

PROMPT_SHARE = (0.1, 0.4)  # share of an utterance held clean as its prompt in training
DEFAULT_CHARACTERS = string.ascii_lowercase + string.digits + " .,;:!?'-\"()"


@dataclass
class VoicePrompt:
    """A reference clip (float32 mono at the VAE's rate) and its transcript: the voice to continue."""

    audio: np.ndarray
    text: str


class TTSTask(FrozenVAETask, FlowMatchingTask):
    """Speaks lines in a named voice or the voice of a reference prompt.

    Args:
        vae: folder of the audio VAE (``unidit fit audio-vae`` export) whose latents are diffused
            and which decodes samples; None only for latent-level use (tests).
        tokenizer: folder of the sentencepiece text tokenizer (:class:`~unidit.tasks.tts.text.TextTokenizer`);
            None = :func:`default_tokenizer` (`unidit fit tts` fits one on the training transcripts instead).
        speakers: names of the training voices (rows of the speaker embedding).
        preset: backbone size preset (tiny, small, base, large).
        backbone: overrides of the preset, e.g. ``{"arch": "mmdit", "depth": 8}``.
        latent_channels: channels of the VAE latents (checked against ``vae``).
        patch_size: latent frames per token.
        text_dim: width of the learned text encoder (the backbone's context width).
        text_layers: transformer layers of the text encoder.
        text_heads: attention heads of the text encoder.
        filler_text: add F5-TTS's filler-padded text to the input tokens.
        duration_predictor: the predictor that sets the length at sampling: ``sentence`` (regression on
            the pooled text) or ``tokens`` (sum of per-token durations); both are trained.
        duration_weight: weight of each predictor's loss beside the flow loss.
        prompt_prob: fraction of training utterances whose prefix is held clean as a prompt.
        speaker_dropout: fraction of training lines whose voice is replaced by the unknown voice.
        max_sample_seconds: longest utterance sampled (a predicted duration is clipped to it).
        **flow_options: the shared options of ``FlowMatchingTask`` (lr, EMA, caption dropout, ...).
    """

    def __init__(
        self,
        vae: str | None = None,
        tokenizer: str | None = None,
        speakers: list[str] | None = None,
        preset: str = "small",
        backbone: dict | None = None,
        latent_channels: int = 16,
        patch_size: int = 2,
        text_dim: int = 128,
        text_layers: int = 2,
        text_heads: int = 4,
        filler_text: bool = False,
        duration_predictor: str = "sentence",
        duration_weight: float = 0.1,
        prompt_prob: float = 0.3,
        speaker_dropout: float = 0.2,
        max_sample_seconds: float = 20.0,
        **flow_options,
    ):
        super().__init__(**flow_options)
        self.save_hyperparameters()
        if duration_predictor not in PREDICTORS:
            raise ValueError(f"duration_predictor must be one of {PREDICTORS}, got {duration_predictor!r}")
        check_mixture(prompt_prob=prompt_prob)
        check_mixture(speaker_dropout=speaker_dropout)
        text = TextTokenizer.load(tokenizer) if tokenizer is not None else default_tokenizer()
        self.frontend = TextFrontend(text, SpeakerTable(speakers or []))
        config = TTSDenoiserConfig(preset, dict(backbone or {}), latent_channels, patch_size,
                                   self.frontend.num_ids, text_dim, text_layers, text_heads, filler_text)
        self.denoiser = TTSDenoiser(config)
        self.vae = load_frozen_vae(vae, latent_channels) if vae is not None else None
        self.duration_predictor = duration_predictor
        self.duration_weight = duration_weight
        self.prompt_prob = prompt_prob
        self.speaker_dropout = speaker_dropout
        self.max_sample_seconds = max_sample_seconds
        self._conditioning_rng = torch.Generator().manual_seed(0)

    @property
    def speakers(self) -> list[str]:
        return list(self.frontend.speakers.names)

    # -- conditioning -----------------------------------------------------------------
    def encode_captions(self, captions: list[Line | str]) -> tuple[Tensor, Tensor]:
        """Context ids ``(B, S, 1)`` and mask ``(B, S)`` of lines (the denoiser embeds them itself)."""
        ids, mask = self.frontend(list(captions))
        return ids.to(self.device), mask.to(self.device)

    def setup(self, stage: str) -> None:
        """Start both duration predictors at the training corpus' mean durations, then the kit's setup."""
        data = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and data is not None and not bool(self.denoiser.duration.calibrated):
            lines, seconds = data.train_lines()
            tokens = np.array([len(self.frontend.text_ids(line.text)) for line in lines], dtype=np.float64)
            log_seconds = np.log(np.asarray(seconds, dtype=np.float64))
            self.denoiser.duration.calibrate(log_seconds.mean(), (log_seconds - np.log(tokens)).mean())
        super().setup(stage)

    # -- training -----------------------------------------------------------------------
    def flow_inputs(self, batch: dict) -> FlowInputs:
        packed = self.pack_whole_patches(batch["latents"])
        lines = list(batch["lines"])
        held = None
        if self.training:
            held = self._random_prompts(packed.data_mask)
            lines = self._drop_speakers(lines)
        return FlowInputs(x0=packed.tokens, captions=lines, mask=packed.data_mask, cond=conditioning_for(packed, held))

    def _random_prompts(self, data_mask: Tensor) -> Tensor | None:
        """(B, L) tokens held clean: a prefix of ``PROMPT_SHARE`` of the utterance, for ``prompt_prob`` of them."""
        g = self._conditioning_rng
        chosen = torch.rand(data_mask.shape[0], generator=g) < self.prompt_prob  # (B,)
        if not bool(chosen.any()):
            return None
        low, high = PROMPT_SHARE
        share = torch.rand(data_mask.shape[0], generator=g) * (high - low) + low  # (B,)
        prefix = (share * data_mask.sum(dim=1).cpu().float()).floor()  # (B,) tokens
        index = torch.arange(data_mask.shape[1]).float()[None]  # (1, L)
        return ((index < prefix[:, None]) & chosen[:, None]).to(data_mask.device) & data_mask  # (B, L)

    def _drop_speakers(self, lines: list[Line]) -> list[Line]:
        drop = torch.rand(len(lines), generator=self._conditioning_rng) < self.speaker_dropout  # (B,)
        return [line._replace(speaker=None) if bool(d) else line for line, d in zip(lines, drop)]

    def duration_loss(self, batch: dict, network=None) -> dict[str, Tensor]:
        """Each predictor's loss (log seconds) on the batch's lines and true durations."""
        network = network or self.denoiser
        context, mask = self.encode_captions(list(batch["lines"]))
        seconds = torch.as_tensor(batch["seconds"], dtype=torch.float32, device=self.device)  # (B,)
        return duration_losses(network.durations(context, mask), seconds)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor | None:
        inputs = self.flow_inputs(batch)
        context, context_mask = self.encode_captions(self.drop_captions(inputs.captions))

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(x_t, t, context, context_mask)

        flow = self.flow.loss(velocity, inputs.x0, mask=inputs.mask, cond=inputs.cond)
        durations = self.duration_loss(batch)
        for name, value in durations.items():
            self.log(f"train/duration_{name}", value.detach(), batch_size=inputs.x0.shape[0])
        return self.guarded_loss(flow + self.duration_weight * sum(durations.values()), inputs.x0.shape[0])

    def validation_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = super().validation_step(batch, batch_idx)
        with torch.no_grad():
            network = self.sampling_network()
            context, mask = self.encode_captions(list(batch["lines"]))
            log_seconds = network.durations(context, mask)
            seconds = torch.as_tensor(batch["seconds"], dtype=torch.float32, device=self.device)
            for name in PREDICTORS:
                error = (log_seconds.of(name).exp() - seconds).abs().mean()
                self.log(f"val/duration_error_{name}_s", error, batch_size=len(seconds))
        return loss

    # -- durations ----------------------------------------------------------------------
    @torch.no_grad()
    def predict_seconds(self, lines: list[Line], predictor: str | None = None, use_ema: bool = True) -> Tensor:
        """Seconds ``(B,)`` each line would last, by ``predictor`` (default: the task's)."""
        context, mask = self.encode_captions(lines)
        log_seconds = self.sampling_network(use_ema).durations(context, mask)
        return log_seconds.of(predictor or self.duration_predictor).exp().float().cpu()

    def plan_seconds(self, lines: list[Line], seconds: list[float] | None, prompt: VoicePrompt | None,
                     speed: float = 1.0) -> list[float]:
        """Seconds of new speech per line: given, or predicted (rate-matched to the prompt), divided by ``speed``."""
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if seconds is not None:
            if len(seconds) != len(lines) or min(seconds) <= 0:
                raise ValueError(f"seconds must be one positive duration per line ({len(lines)}), got {seconds}")
            planned = torch.tensor(seconds, dtype=torch.float32)
        else:
            planned = self.predict_seconds(lines)  # (B,)
            if prompt is not None:
                said = self.predict_seconds([Line(prompt.text, line.speaker) for line in lines])  # (B,)
                planned = planned * (len(prompt.audio) / self.sample_rate) / said  # the prompt's speaking rate
        return [min(float(s) / speed, self.max_sample_seconds) for s in planned]

    # -- sampling ---------------------------------------------------------------------------
    def frames_for(self, seconds: float, hop: int, rate: int) -> int:
        """Latent frames holding ``seconds`` of audio, rounded up to whole patches."""
        return self.whole_patch_frames(seconds, hop, rate)

    def prompt_latents(self, prompt: VoicePrompt) -> Tensor:
        """The prompt's normalised latents ``(C, Tp)``, cut to whole patches."""
        vae = self.require_vae()
        whole = vae.hop_length * self.patch_size
        usable = len(prompt.audio) - len(prompt.audio) % whole
        if usable == 0:
            raise ValueError(f"the prompt has {len(prompt.audio)} samples ({len(prompt.audio) / vae.sample_rate:.3f} s);"
                             f" need at least {whole} ({whole / vae.sample_rate:.3f} s)")
        return encode_clips(vae, [np.asarray(prompt.audio[:usable], dtype=np.float32)])[0]  # (C, Tp)

    @torch.no_grad()
    def sample_latents(
        self,
        lines: list[Line],
        frames: list[int],
        *,
        options: SamplingOptions | None = None,
        prompt: Tensor | None = None,
        prompt_text: str | None = None,
        use_ema: bool = True,
    ) -> list[Tensor]:
        """Normalised latents ``(C, Tp + frames_i)`` per line; the first ``Tp`` are ``prompt`` (C, Tp), bit-identical.

        With a prompt, ``prompt_text`` (its transcript) is spoken first: the model reads
        ``prompt_text + " " + line.text`` and generates only the frames after the prompt.
        """
        options = options or SamplingOptions()
        if not lines or len(frames) != len(lines):
            raise ValueError(f"need one frame count per line and at least one line, got {len(lines)}, {len(frames)}")
        channels = self.denoiser.config.latent_channels
        head = torch.zeros(channels, 0) if prompt is None else prompt.float().cpu()  # (C, Tp)
        known = [torch.cat([head, torch.zeros(channels, n)], dim=1) for n in frames]  # (C, Tp + n_i)
        held = [torch.arange(z.shape[1]) < head.shape[1] for z in known]  # (Tp + n_i,)
        if prompt is not None:
            lines = [line._replace(text=f"{prompt_text or ''} {line.text}".strip()) for line in lines]
        return self.sample_around(lines, known, held, options, use_ema)

    @torch.no_grad()
    def sample_speech(
        self,
        lines: list[Line],
        seconds: list[float] | None = None,
        *,
        options: SamplingOptions | None = None,
        prompt: VoicePrompt | None = None,
        speed: float = 1.0,
        use_ema: bool = True,
    ) -> list[np.ndarray]:
        """One float32 mono clip per line at the VAE's rate: the new speech only (a prompt is not repeated)."""
        vae = self.require_vae()
        planned = self.plan_seconds(lines, seconds, prompt, speed)
        frames = [self.frames_for(s, vae.hop_length, vae.sample_rate) for s in planned]
        head = self.prompt_latents(prompt) if prompt is not None else None
        latents = self.sample_latents(lines, frames, options=options, prompt=head,
                                      prompt_text=prompt.text if prompt else None, use_ema=use_ema)
        start = 0 if head is None else head.shape[1] * vae.hop_length  # decoded whole, then the prompt cut off
        audio = decode_latents(vae, latents)
        return [clip[start: start + round(s * vae.sample_rate)] for clip, s in zip(audio, planned)]


def default_tokenizer() -> TextTokenizer:
    """A case-folding character tokenizer over :data:`DEFAULT_CHARACTERS`, the same every time it is built."""
    return TextTokenizer.train([" ".join(DEFAULT_CHARACTERS)], kind="char", vocab_size=4 * len(DEFAULT_CHARACTERS))


def load_frozen_vae(path: str, latent_channels: int) -> AudioVAE:
    """The audio VAE saved at ``path``, frozen, checked against the denoiser's channel count."""
    return frozen_vae.load_frozen_vae(AudioVAE, path, latent_channels)
