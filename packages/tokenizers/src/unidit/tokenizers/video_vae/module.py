"""Lightning training of the causal video VAE.

Each step encodes a batch of clips, samples the posterior, and (with a
timestep-conditioned decoder, LTX-Video) noises the latent as
``z_t = (1 - t) z + t n`` with ``t ~ U(0, train_noise_max)`` before decoding it
at timestep ``t``. The loss is L1 + pyramid SSIM + KL (:mod:`.losses`); with
``use_discriminator`` a 3D patch discriminator adds a hinge adversarial term
after ``discriminator_start`` steps, and both networks are stepped by hand
(manual optimisation; Lightning then counts both optimisers' steps in
``global_step``, so ``max_steps`` covers about half as many batches once the
discriminator is on). AdamW with linear warm-up and cosine decay.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import Tensor

from unidit.tokenizers.video_vae.config import video_vae_config
from unidit.tokenizers.video_vae.discriminator import PatchDiscriminator3d
from unidit.tokenizers.video_vae.losses import VAELossWeights, hinge_discriminator_loss, vae_loss
from unidit.tokenizers.video_vae.metrics import psnr, ssim
from unidit.tokenizers.video_vae.model import VideoVAE


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float = 0.1) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine down to ``floor`` at ``total_steps`` (-1 = constant)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class VideoVAETraining(pl.LightningModule):
    """Trains a :class:`VideoVAE`; ``self.vae`` is the network to export.

    Args:
        preset: VAE size preset (tiny, small, ltx).
        vae: overrides of the preset's :class:`VideoVAEConfig` fields.
        l1_weight: weight of the pixel L1 loss.
        ssim_weight: weight of the pyramid ``1 - SSIM`` loss.
        kl_weight: weight of the KL loss (mean over latent elements).
        adversarial_weight: weight of the hinge generator loss (with ``use_discriminator``).
        use_discriminator: train a 3D patch discriminator too (manual optimisation).
        discriminator_start: step from which the adversarial term is used.
        lr: peak AdamW learning rate (VAE and discriminator).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
    """

    def __init__(
        self,
        preset: str = "small",
        vae: dict | None = None,
        l1_weight: float = 1.0,
        ssim_weight: float = 0.5,
        kl_weight: float = 1e-4,
        adversarial_weight: float = 0.1,
        use_discriminator: bool = False,
        discriminator_start: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 50,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vae = VideoVAE(video_vae_config(preset, **(vae or {})))
        self.weights = VAELossWeights(l1_weight, ssim_weight, kl_weight, adversarial_weight)
        self.discriminator = PatchDiscriminator3d() if use_discriminator else None
        self.automatic_optimization = not use_discriminator

    # -- one reconstruction ----------------------------------------------------------------
    def reconstruct_for_training(self, video: Tensor):
        """Posterior sample, LTX decoder noise if enabled, decode: ``(recon, posterior)``."""
        posterior = self.vae.encode(video)
        z = posterior.sample()  # (B, C, T, h, w)
        timestep = None
        config = self.vae.config
        if config.timestep_conditioning:
            timestep = torch.rand(z.shape[0], device=z.device) * config.train_noise_max  # (B,)
            z = self.vae.noise_latents(z, timestep)
        return self.vae.decode(z, timestep), posterior

    def _total_steps(self) -> int:
        return int(self.trainer.max_steps) if self._trainer is not None and self.trainer.max_steps else -1

    # -- training --------------------------------------------------------------------------
    def training_step(self, video: Tensor, batch_idx: int):
        recon, posterior = self.reconstruct_for_training(video)
        adversarial = self.discriminator is not None and self.global_step >= self.hparams.discriminator_start
        fake_logits = self.discriminator(recon) if adversarial else None
        loss, parts = vae_loss(recon, video, posterior, self.weights, fake_logits)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite video VAE loss at step {self.global_step}: {parts}")
        batch = video.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=batch)
        if self.automatic_optimization:
            return loss

        vae_opt, disc_opt = self.optimizers()
        vae_sched, disc_sched = self.lr_schedulers()
        vae_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        vae_opt.step()
        vae_sched.step()
        if adversarial:
            real_logits = self.discriminator(video)
            disc_loss = hinge_discriminator_loss(real_logits, self.discriminator(recon.detach()))
            disc_opt.zero_grad(set_to_none=True)
            self.manual_backward(disc_loss)
            disc_opt.step()
            self.log("train/discriminator", disc_loss, batch_size=batch)
        disc_sched.step()
        return None

    @torch.no_grad()
    def validation_step(self, video: Tensor, batch_idx: int) -> None:
        recon = self.vae.decode(self.vae.encode(video).mode()).clamp(-1, 1)
        batch = video.shape[0]
        self.log("val/l1", (recon - video).abs().mean(), prog_bar=True, batch_size=batch)
        self.log("val/psnr", psnr(recon, video).mean(), prog_bar=True, batch_size=batch)
        self.log("val/ssim", ssim(recon, video).mean(), batch_size=batch)

    def configure_optimizers(self):
        def schedule(optimizer):
            total, warmup = self._total_steps(), self.hparams.warmup_steps
            return {
                "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup, total)),
                "interval": "step",
            }

        def adamw(params):
            h = self.hparams
            return torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay, betas=(0.9, 0.99))

        vae_opt = adamw(self.vae.parameters())
        if self.discriminator is None:
            return {"optimizer": vae_opt, "lr_scheduler": schedule(vae_opt)}
        disc_opt = adamw(self.discriminator.parameters())
        return [vae_opt, disc_opt], [schedule(vae_opt), schedule(disc_opt)]
