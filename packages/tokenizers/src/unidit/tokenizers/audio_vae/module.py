"""Lightning training of the waveform VAE (reconstruction + KL, optional adversarial).

Without a discriminator this is plain automatic optimisation of
:class:`~unidit.tokenizers.audio_vae.losses.AudioVAELoss` with Adam (betas 0.8, 0.99
as in HiFi-GAN / DAC) and linear warm-up then cosine decay. With
``use_discriminator`` it switches to manual optimisation with two optimisers
(EnCodec §3.4): each step first updates the multi-scale STFT discriminator on the
hinge loss, then the VAE on reconstruction + ``adv_weight`` x hinge +
``feature_weight`` x feature matching; the adversarial terms start after
``disc_start_step`` VAE updates. ``trainer.max_steps`` then counts the steps of both
optimisers (Lightning's convention).

Batches are crops (B, 1, T) from the data module; they are trimmed to a multiple
of the hop so every crop encodes to whole latent frames.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import Tensor
from unidit.tokenizers.audio_vae.config import audio_vae_config
from unidit.tokenizers.audio_vae.discriminator import (
    MultiScaleSTFTDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from unidit.tokenizers.audio_vae.losses import AudioVAELoss
from unidit.tokenizers.audio_vae.metrics import clip_metrics
from unidit.tokenizers.audio_vae.model import AudioVAE


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then half a cosine down to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class AudioVAETraining(pl.LightningModule):
    """Trains an :class:`AudioVAE`.

    Args:
        preset: VAE size preset (``tiny``, ``small``, ``base``).
        vae: overrides of the preset's :class:`AudioVAEConfig` fields (e.g. ``{latent_channels: 32}``).
        lr: peak Adam learning rate of the VAE (and of the discriminator).
        adam_beta1: Adam beta1.
        adam_beta2: Adam beta2.
        warmup_steps: linear warm-up steps.
        stft_weight: weight of the multi-resolution STFT loss.
        mel_weight: weight of the multi-resolution log-mel L1 (0 = off).
        l1_weight: weight of the waveform L1.
        kl_weight: weight of the KL term.
        use_discriminator: train with the multi-scale STFT discriminator (manual optimisation).
        adv_weight: weight of the generator hinge loss.
        feature_weight: weight of the feature-matching loss.
        disc_start_step: step from which the adversarial terms enter the VAE's loss.
        disc_channels: channels of each discriminator conv.
        grad_clip: largest global gradient norm of each update (0 = no clipping). The
            CPU default's peak learning rate (1e-3) blows the posterior log-variance up
            within ~100 steps without it.
    """

    def __init__(
        self,
        preset: str = "small",
        vae: dict | None = None,
        lr: float = 2e-3,
        adam_beta1: float = 0.8,
        adam_beta2: float = 0.99,
        warmup_steps: int = 50,
        stft_weight: float = 1.0,
        mel_weight: float = 0.0,
        l1_weight: float = 1.0,
        kl_weight: float = 1e-4,
        use_discriminator: bool = False,
        adv_weight: float = 1.0,
        feature_weight: float = 2.0,
        disc_start_step: int = 0,
        disc_channels: int = 32,
        grad_clip: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vae = AudioVAE(audio_vae_config(preset, **(vae or {})))
        self.loss = AudioVAELoss(self.vae.sample_rate, stft_weight, mel_weight, l1_weight, kl_weight)
        self.discriminator = MultiScaleSTFTDiscriminator(channels=disc_channels) if use_discriminator else None
        self.automatic_optimization = not use_discriminator

    def _crop_to_hop(self, wav: Tensor) -> Tensor:
        usable = wav.shape[-1] - wav.shape[-1] % self.vae.hop_length
        if usable == 0:
            raise ValueError(
                f"training crops of {wav.shape[-1]} samples are shorter than one hop ({self.vae.hop_length} samples)"
            )
        return wav[..., :usable]  # (B, 1, T)

    def _log_terms(self, prefix: str, terms: dict[str, Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value, prog_bar=name == "loss", batch_size=batch_size)

    # -- training -------------------------------------------------------------------------
    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor | None:
        wav = self._crop_to_hop(batch)  # (B, 1, T)
        if self.discriminator is not None:
            return self._adversarial_step(wav)
        reconstruction, posterior = self.vae(wav)  # (B, 1, T)
        terms = self.loss(reconstruction, wav, posterior)
        if not torch.isfinite(terms["loss"]):
            print(f"step {self.global_step}: non-finite loss, step skipped", flush=True)
            return None
        self._log_terms("train", terms, wav.shape[0])
        return terms["loss"]

    def _adversarial_step(self, wav: Tensor) -> Tensor:
        vae_opt, disc_opt = self.optimizers()
        vae_sched, disc_sched = self.lr_schedulers()
        reconstruction, posterior = self.vae(wav)  # (B, 1, T)
        adversarial = vae_sched.last_epoch >= self.hparams.disc_start_step  # VAE updates so far (resumable)

        if adversarial:
            disc_loss = discriminator_hinge_loss(self.discriminator(wav), self.discriminator(reconstruction.detach()))
            disc_opt.zero_grad()
            self.manual_backward(disc_loss)
            self._clip(disc_opt)
            disc_opt.step()
            disc_sched.step()
            self.log("train/disc", disc_loss, batch_size=wav.shape[0])

        terms = self.loss(reconstruction, wav, posterior)
        total = terms["loss"]
        if adversarial:
            real, fake = self.discriminator(wav), self.discriminator(reconstruction)
            terms["adv"] = generator_hinge_loss(fake)
            terms["feature"] = feature_matching_loss(real, fake)
            total = total + self.hparams.adv_weight * terms["adv"] + self.hparams.feature_weight * terms["feature"]
        vae_opt.zero_grad()
        self.manual_backward(total)
        self._clip(vae_opt)
        vae_opt.step()
        vae_sched.step()
        self._log_terms("train", {**terms, "loss": total}, wav.shape[0])
        return total.detach()

    def _clip(self, optimizer) -> None:
        """Scale the gradients of ``optimizer``'s parameters to a global norm of at most ``grad_clip``."""
        if self.hparams.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.hparams.grad_clip)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Automatic optimisation: clip to ``grad_clip`` (a Trainer-level value, if given, wins)."""
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        else:
            self._clip(optimizer)

    def configure_optimizers(self):
        h = self.hparams
        total = int(self.trainer.max_steps) if self.trainer is not None and self.trainer.max_steps else -1
        if self.discriminator is not None and total > 0:
            total //= 2  # Lightning's max_steps counts the steps of both optimisers

        def schedule(optimizer):
            lr_lambda = lambda step: warmup_cosine(step, h.warmup_steps, total)  # noqa: E731
            return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda), "interval": "step"}

        vae_opt = torch.optim.Adam(self.vae.parameters(), lr=h.lr, betas=(h.adam_beta1, h.adam_beta2))
        if self.discriminator is None:
            return {"optimizer": vae_opt, "lr_scheduler": schedule(vae_opt)}
        disc_opt = torch.optim.Adam(self.discriminator.parameters(), lr=h.lr, betas=(h.adam_beta1, h.adam_beta2))
        return [vae_opt, disc_opt], [schedule(vae_opt), schedule(disc_opt)]

    # -- validation -------------------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        wav = self._crop_to_hop(batch)  # (B, 1, T)
        posterior = self.vae.encode(wav)
        reconstruction = self.vae.decode(posterior.mean)  # (B, 1, T)
        terms = self.loss(reconstruction, wav, posterior)
        metrics = {
            name: value.mean() for name, value in clip_metrics(wav, reconstruction, self.vae.sample_rate).items()
        }
        self._log_terms("val", {**terms, **metrics}, wav.shape[0])
        return terms["loss"]
