"""Lightning training of the motion VQ-VAE (T2M-GPT, Zhang et al., CVPR 2023, §3.1 and §4.1).

Batches are normalised feature windows (B, T, D) (T a multiple of 4). The loss is
:class:`~unidit.tokenizers.motion.vqvae.MotionVQLoss` (smooth-L1 reconstruction + 0.5 x joint
velocity + commitment 0.02; the codebook itself follows the encoder by EMA, with dead-code reset).
AdamW (betas 0.9, 0.99 as T2M-GPT) with linear warm-up then cosine decay. Validation logs the loss,
the normalised feature L2 and the codebook usage of the batch.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from unidit.tokenizers.audio_vae.module import warmup_cosine
from unidit.tokenizers.motion.config import motion_vq_config
from unidit.tokenizers.motion.metrics import code_statistics, feature_l2
from unidit.tokenizers.motion.vqvae import MotionVQLoss, MotionVQVAE


class MotionVQTraining(pl.LightningModule):
    """Trains a :class:`MotionVQVAE`.

    Args:
        preset: network preset (``tiny``, ``small``, ``t2m-gpt``, ``momask``, ``m2dm``).
        vqvae: overrides of the preset's :class:`MotionVQConfig` fields (e.g. ``{feature_dim: 251, num_joints: 21}``).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        velocity_weight: weight of the joint-velocity smooth-L1 term (T2M-GPT: 0.5).
        grad_clip: largest global gradient norm (0 = no clipping).
    """

    def __init__(
        self,
        preset: str = "small",
        vqvae: dict | None = None,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        velocity_weight: float = 0.5,
        grad_clip: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vqvae = MotionVQVAE(motion_vq_config(preset, **(vqvae or {})))
        self.loss = MotionVQLoss(self.vqvae.config.num_joints, velocity_weight)

    def on_fit_start(self) -> None:
        """Copy the data's Mean / Std (D,) into the model, so an export normalises as training did."""
        data = getattr(self.trainer, "datamodule", None)
        if data is not None and getattr(data, "mean", None) is not None:
            self.vqvae.set_statistics(torch.as_tensor(data.mean), torch.as_tensor(data.std))

    def _log_terms(self, prefix: str, terms: dict[str, Tensor], batch_size: int) -> None:
        for name, value in terms.items():
            self.log(f"{prefix}/{name}", value, prog_bar=name == "loss", batch_size=batch_size)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        reconstruction, _, commitment = self.vqvae(batch)  # (B, T, D)
        terms = self.loss(reconstruction, batch, commitment)
        self._log_terms("train", terms, batch.shape[0])
        return terms["loss"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        reconstruction, indices, commitment = self.vqvae(batch)  # (B, T, D), (B, T / 4[, Q])
        terms = self.loss(reconstruction, batch, commitment)
        terms["feature_l2"] = feature_l2(batch, reconstruction).mean()
        terms["usage"] = torch.tensor(code_statistics(indices, self.vqvae.config.codebook_size)["usage"])
        self._log_terms("val", terms, batch.shape[0])
        return terms["loss"]

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        elif self.hparams.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.hparams.grad_clip)

    def configure_optimizers(self):
        h = self.hparams
        total = int(self.trainer.max_steps) if self.trainer is not None and self.trainer.max_steps else -1
        optimizer = torch.optim.AdamW(self.vqvae.parameters(), lr=h.lr, betas=(0.9, 0.99), weight_decay=h.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, h.warmup_steps, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
