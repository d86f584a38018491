"""Training steps of the tiny motion VQ-VAE on the real HumanML3D sample: loss falls, reconstruction
improves, codes are used, the export round-trips and the reconstruction metrics are computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from unidit.tokenizers.motion import MotionVQTraining, MotionVQVAE, evaluate_clips
from unidit.tokenizers.motion.metrics import feature_l2

SAMPLE = Path(__file__).resolve().parents[2] / "tasks" / "motion" / "tests" / "data" / "humanml3d"
WINDOW = 32


@pytest.fixture(scope="module")
def sample():
    features = np.load(SAMPLE / "new_joint_vecs" / "012314.npy")  # (170, 263)
    mean, std = np.load(SAMPLE / "Mean.npy"), np.load(SAMPLE / "Std.npy")
    return torch.from_numpy(features), torch.from_numpy(mean), torch.from_numpy(std)


def windows(normalised: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """(count, WINDOW, D) random crops of one (T, D) clip."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(normalised) - WINDOW + 1, (count,), generator=generator)
    return torch.stack([normalised[s : s + WINDOW] for s in starts.tolist()])


@pytest.fixture(scope="module")
def trained(sample):
    features, mean, std = sample
    torch.manual_seed(0)
    module = MotionVQTraining(preset="tiny", warmup_steps=0)
    module.log = lambda *args, **kwargs: None  # no Trainer here
    module.vqvae.set_statistics(mean, std)
    normalised = module.vqvae.normalize(features)  # (170, 263)
    held_out = windows(normalised, 8, seed=99)
    with torch.no_grad():
        before = feature_l2(held_out, module.vqvae.eval()(held_out)[0]).mean().item()
    module.vqvae.train()
    optimizer = torch.optim.AdamW(module.vqvae.parameters(), lr=2e-3)
    losses = []
    batches = [windows(normalised, 8, seed=seed) for seed in range(4)]  # a fixed training set, cycled
    for step in range(60):
        loss = module.training_step(batches[step % 4], step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    module.vqvae.eval()
    with torch.no_grad():
        after = feature_l2(held_out, module.vqvae(held_out)[0]).mean().item()
    return module.vqvae, losses, before, after


def test_loss_falls(trained):
    _, losses, _, _ = trained
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:4]), losses


def test_reconstruction_improves(trained):
    _, _, before, after = trained
    assert after < 0.7 * before, (before, after)


def test_metrics_are_computed(trained, sample):
    vqvae, _, _, _ = trained
    features, _, _ = sample
    metrics = evaluate_clips(vqvae, [features, features[:50]])
    assert metrics["clips"] == 2
    assert np.isfinite(metrics["mpjpe_mm"]) and metrics["mpjpe_mm"] > 0.0 and metrics["feature_l2"] > 0.0
    assert 0.0 < metrics["codebook_usage"] <= 1.0
    assert 1.0 <= metrics["perplexity"] <= vqvae.config.codebook_size * metrics["codebook_usage"] + 1e-6
    # A perfect reconstruction scores zero: MPJPE is measured on the joints recovered from both.
    identity = evaluate_clips(_Identity(vqvae), [features])
    assert identity["mpjpe_mm"] < 1e-3 and identity["feature_l2"] == 0.0  # float32 normalise round trip


class _Identity(torch.nn.Module):
    """A 'VQ-VAE' that returns its input: the metrics' zero point."""

    def __init__(self, vqvae: MotionVQVAE):
        super().__init__()
        self.inner, self.config, self.frames_per_code = vqvae, vqvae.config, vqvae.frames_per_code

    def normalize(self, x):
        return self.inner.normalize(x)

    def denormalize(self, x):
        return self.inner.denormalize(x)

    def forward(self, x):
        return x, self.inner.encode(x), torch.zeros(())


def test_export_round_trip(trained, sample, tmp_path):
    vqvae, _, _, _ = trained
    features, mean, _ = sample
    vqvae.save_pretrained(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} >= {"config.json", "model.safetensors"}
    loaded = MotionVQVAE.from_pretrained(str(tmp_path / "model")).eval()
    assert loaded.config == vqvae.config and torch.equal(loaded.mean, mean)
    x = vqvae.normalize(features[None, :168])  # (1, 168, 263)
    with torch.no_grad():
        codes = vqvae.encode(x)  # (1, 42)
        assert codes.shape == (1, 42) and torch.equal(loaded.encode(x), codes)
        assert torch.equal(loaded.decode(codes), vqvae.decode(codes))


def test_bad_shapes_are_named():
    vqvae = MotionVQVAE(MotionVQTraining(preset="tiny").vqvae.config)
    with pytest.raises(ValueError, match=r"\(B, T, 263\)"):
        vqvae(torch.zeros(1, 8, 251))
    with pytest.raises(ValueError, match="multiple of 4"):
        vqvae(torch.zeros(1, 10, 263))
