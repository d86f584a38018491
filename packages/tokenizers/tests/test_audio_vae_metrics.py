"""Reconstruction metrics: MR-STFT distance, SI-SDR, mel L1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.tokenizers.audio_vae import mel_l1, mr_stft_distance, si_sdr
from unidit.tokenizers.audio_vae.metrics import baseline_metrics, lowpass_baseline


@pytest.fixture(scope="module")
def signals() -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (220.0, 440.0, 1000.0)]) * 0.5  # (3, T)
    return tones + 0.01 * torch.randn_like(tones)


def test_identical_signals(signals):
    assert torch.equal(mr_stft_distance(signals, signals), torch.zeros(3))
    assert torch.equal(mel_l1(signals, signals, 16000), torch.zeros(3))
    assert (si_sdr(signals, signals) > 60).all()


def test_metrics_are_batched_per_clip_and_accept_channel_axis(signals):
    noisy = signals + 0.1 * torch.randn_like(signals)
    batched = si_sdr(signals[:, None], noisy[:, None])  # (B, 1, T)
    single = torch.stack([si_sdr(signals[i : i + 1], noisy[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(batched, single)
    assert mr_stft_distance(signals, noisy).shape == mel_l1(signals, noisy, 16000).shape == (3,)


def test_more_noise_scores_worse(signals):
    little = signals + 0.01 * torch.randn_like(signals)
    much = signals + 0.3 * torch.randn_like(signals)
    assert (si_sdr(signals, little) > si_sdr(signals, much) + 10).all()
    assert (mr_stft_distance(signals, little) < mr_stft_distance(signals, much)).all()
    assert (mel_l1(signals, little, 16000) < mel_l1(signals, much, 16000)).all()


def test_si_sdr_is_scale_invariant_and_matches_the_definition(signals):
    est = signals + 0.2 * torch.randn_like(signals)
    torch.testing.assert_close(si_sdr(signals, 0.1 * est), si_sdr(signals, est), atol=1e-3, rtol=0)
    ref, e = signals[0] - signals[0].mean(), est[0] - est[0].mean()
    target = (e @ ref) / (ref @ ref) * ref
    expected = 10 * torch.log10(target.pow(2).sum() / (e - target).pow(2).sum())
    torch.testing.assert_close(si_sdr(signals[:1], est[:1])[0], expected, atol=1e-3, rtol=0)


def test_mismatched_shapes_are_refused(signals):
    with pytest.raises(ValueError, match="same shape"):
        si_sdr(signals, signals[:, :100])
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        mr_stft_distance(signals[0], signals[0])


def test_baselines_rank_silence_below_a_lowpass_copy(signals):
    clips = [s.numpy() for s in signals]
    assert lowpass_baseline(clips[0], 16000).shape == clips[0].shape
    rows = baseline_metrics(clips, 16000)
    assert rows["lowpass_4x"]["mr_stft"] < rows["silence"]["mr_stft"]
    assert rows["lowpass_4x"]["si_sdr"] > rows["silence"]["si_sdr"]
    assert np.isfinite([v for row in rows.values() for v in row.values()]).all()
