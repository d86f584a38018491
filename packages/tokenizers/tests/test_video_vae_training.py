"""Training the tiny video VAE: the loss falls and held-out reconstructions improve.

A few dozen CPU steps are far from a converged VAE: the tiny preset (4 latent
channels for 8x8x4 pixels, 1:192) does not yet beat bilinear 8x downsampling
after them (the app's report compares with it after a real run), so the
baseline here is the clip's mean colour, and the untrained network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.tokenizers.video_vae import VideoClipDataset, VideoVAETraining, psnr, ssim, to_model_range, to_uint8
from unidit.tokenizers.video_vae.evaluation import reconstruct
from unidit.tokenizers.video_vae.losses import pyramid_ssim_loss, vae_loss


def moving_squares(count: int, frames: int = 9, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Clips of one coloured square sliding over a plain background: uint8 ``(F, size, size, 3)``."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        clip = np.empty((frames, size, size, 3), np.uint8)
        clip[:] = rng.integers(0, 256, 3)
        side = int(rng.integers(8, 14))
        x, y = rng.uniform(0, size - side, 2)
        vx, vy = rng.uniform(-2, 2, 2)
        colour = rng.integers(0, 256, 3)
        for t in range(frames):
            left = int(np.clip(x + vx * t, 0, size - side))
            top = int(np.clip(y + vy * t, 0, size - side))
            clip[t, top : top + side, left : left + side] = colour
        clips.append(clip)
    return clips


def mean_colour_baseline(video: torch.Tensor) -> torch.Tensor:
    """Every pixel of a clip replaced by the clip's mean colour: ``(B, 3, F, H, W)``."""
    return video.mean(dim=(2, 3, 4), keepdim=True).expand_as(video)


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    return to_model_range(np.stack(moving_squares(16, seed=10**6)))  # never trained on


@pytest.fixture(scope="module")
def training_run(held_out):
    """36 steps of the tiny VAE on fresh clips each step; PSNR on held-out clips before and after."""
    torch.manual_seed(0)
    module = VideoVAETraining(preset="tiny", lr=5e-4, warmup_steps=5)
    before = psnr(reconstruct(module.vae, list(to_uint8(held_out))), held_out).mean()
    optimizer = module.configure_optimizers()["optimizer"]
    losses = []
    for step in range(36):
        video = to_model_range(np.stack(moving_squares(8, seed=step + 1)))  # (8, 3, 9, 32, 32)
        module.vae.train()
        recon, posterior = module.reconstruct_for_training(video)
        loss, _ = vae_loss(recon, video, posterior, module.weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return module.vae.eval(), losses, before


def test_loss_falls(training_run):
    _, losses, _ = training_run
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6]), losses


def test_held_out_reconstruction_improves_and_beats_a_trivial_baseline(training_run, held_out):
    vae, _, before = training_run
    recon = reconstruct(vae, list(to_uint8(held_out)))
    after = psnr(recon, held_out).mean()
    assert after > before + 2.0, (before, after)
    assert after > psnr(mean_colour_baseline(held_out), held_out).mean() + 1.0
    assert torch.isfinite(ssim(recon, held_out)).all()


def test_structural_loss_is_zero_for_a_perfect_reconstruction():
    video = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    assert pyramid_ssim_loss(video, video).abs() < 1e-5
    assert pyramid_ssim_loss(torch.zeros_like(video), video) > 0.5


def test_timestep_conditioned_training_step_runs():
    torch.manual_seed(0)
    module = VideoVAETraining(preset="tiny", vae={"timestep_conditioning": True})
    video = to_model_range(np.stack(moving_squares(2, frames=5, size=16)))
    recon, posterior = module.reconstruct_for_training(video)
    loss, parts = vae_loss(recon, video, posterior, module.weights)
    loss.backward()
    assert set(parts) == {"l1", "ssim", "kl"} and torch.isfinite(loss)
    assert module.vae.decoder.time_embed.mlp[0].weight.grad is not None


def test_adversarial_training_steps_both_networks():
    import lightning.pytorch as pl

    torch.manual_seed(0)
    module = VideoVAETraining(preset="tiny", use_discriminator=True, discriminator_start=0, lr=1e-3, warmup_steps=1)
    discriminator_before = [p.detach().clone() for p in module.discriminator.parameters()]
    vae_before = [p.detach().clone() for p in module.vae.parameters()]
    clips = VideoClipDataset(moving_squares(4, frames=5, size=16), 5)
    trainer = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, torch.utils.data.DataLoader(clips, batch_size=2))
    assert not module.automatic_optimization
    assert any(not torch.equal(a, b) for a, b in zip(discriminator_before, module.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(vae_before, module.vae.parameters()))
    assert torch.isfinite(trainer.callback_metrics["train/adversarial"])
