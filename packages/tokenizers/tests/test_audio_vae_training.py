"""A few dozen training steps of the tiny VAE: the loss falls and held-out clips beat silence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.tokenizers.audio_vae import AudioClipDataset, AudioVAEDataModule, AudioVAETraining
from unidit.tokenizers.audio_vae.metrics import baseline_metrics, reconstruction_metrics

SAMPLE_RATE = 16000


def decaying_tones(count: int, seed: int) -> list[np.ndarray]:
    """Plucked-string-like tones: random pitch, level and decay, a little noise, 0.6-1.2 s."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        t = np.arange(int(rng.uniform(0.6, 1.2) * SAMPLE_RATE)) / SAMPLE_RATE
        tone = np.sin(2 * np.pi * rng.uniform(150, 1500) * t) * np.exp(-t * rng.uniform(0.5, 4))
        clips.append((rng.uniform(0.2, 0.6) * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


@pytest.fixture(scope="module")
def trained():
    """40 steps of ``AudioVAETraining.training_step`` on 0.3 s crops of 16 tones."""
    torch.manual_seed(0)
    module = AudioVAETraining(preset="tiny", lr=3e-3, warmup_steps=0)
    module.log = lambda *args, **kwargs: None  # no Trainer here
    data = AudioVAEDataModule(
        train_clips=decaying_tones(16, seed=0),
        val_clips=decaying_tones(4, seed=1),
        crop=320 * 15,
        batch_size=4,
        crops_per_clip=10,
        seed=0,
    )
    data.setup()
    optimizer = torch.optim.Adam(module.vae.parameters(), lr=3e-3, betas=(0.8, 0.99))
    losses = []
    for step, batch in zip(range(40), data.train_dataloader()):
        loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return module.vae.eval(), losses, data.val_split


def test_loss_falls(trained):
    _, losses, _ = trained
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:4]), losses


def test_held_out_reconstruction_beats_trivial_baselines(trained):
    vae, _, held_out = trained
    ours = reconstruction_metrics(vae, held_out, progress=False)
    baselines = baseline_metrics(held_out, SAMPLE_RATE)
    assert ours["mr_stft"] < 0.5 * baselines["silence"]["mr_stft"], (ours, baselines)
    assert ours["mel_l1"] < baselines["silence"]["mel_l1"], (ours, baselines)


def test_clip_dataset_crops_are_deterministic_and_pad_short_clips():
    clips = [np.arange(1000, dtype=np.float32), np.ones(100, dtype=np.float32)]
    dataset = AudioClipDataset(clips, crop=320, seed=3, crops_per_clip=2)
    assert len(dataset) == 4
    first = dataset[0]
    assert first.shape == (1, 320) and torch.equal(first, dataset[0])
    assert torch.equal(first[0], torch.arange(int(first[0, 0]), int(first[0, 0]) + 320, dtype=torch.float32))
    padded = dataset[1]
    assert torch.equal(padded[0, :100], torch.ones(100)) and torch.equal(padded[0, 100:], torch.zeros(220))
    with pytest.raises(ValueError, match="at least one clip"):
        AudioClipDataset([], crop=320)


def test_crop_candidates_prefer_the_loud_part_of_a_clip():
    clip = np.full(16000, 1e-3, dtype=np.float32)
    clip[12000:13000] = 0.5  # one short event in a quiet clip
    plain = AudioClipDataset([clip], crop=1600, seed=0, crops_per_clip=64)
    loudest = AudioClipDataset([clip], crop=1600, seed=0, crops_per_clip=64, candidates=8)
    hits = lambda dataset: np.mean([float(dataset[i].abs().max()) > 0.4 for i in range(len(dataset))])  # noqa: E731
    assert hits(loudest) > hits(plain) + 0.3


def test_training_step_with_the_discriminator_updates_both_networks():
    torch.manual_seed(0)
    module = AudioVAETraining(preset="tiny", use_discriminator=True, disc_channels=4, warmup_steps=0)
    assert not module.automatic_optimization
    optimizers = [
        torch.optim.Adam(module.vae.parameters(), lr=1e-3),
        torch.optim.Adam(module.discriminator.parameters(), lr=1e-3),
    ]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda step: 1.0) for o in optimizers]
    module.optimizers = lambda: optimizers
    module.lr_schedulers = lambda: schedulers
    module.manual_backward = lambda loss: loss.backward()
    module.log = lambda *args, **kwargs: None
    vae_before = [p.detach().clone() for p in module.vae.parameters()]
    disc_before = [p.detach().clone() for p in module.discriminator.parameters()]
    batch = torch.from_numpy(np.stack([c[: 320 * 10] for c in decaying_tones(2, seed=2)]))[:, None]
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(vae_before, module.vae.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, module.discriminator.parameters()))


def test_gradients_are_clipped_to_grad_clip():
    torch.manual_seed(0)
    module = AudioVAETraining(preset="tiny", grad_clip=1e-3)
    optimizer = torch.optim.Adam(module.vae.parameters(), lr=1e-3)
    batch = torch.from_numpy(np.stack([c[: 320 * 10] for c in decaying_tones(2, seed=2)]))[:, None]
    reconstruction, posterior = module.vae(batch)
    module.loss(reconstruction, batch, posterior)["loss"].backward()
    norm = lambda: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.vae.parameters()]))  # noqa: E731
    assert norm() > 1e-3
    module.configure_gradient_clipping(optimizer)
    assert norm() <= 1e-3 * 1.001
