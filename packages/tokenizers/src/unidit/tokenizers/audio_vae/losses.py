"""Reconstruction losses of the waveform VAE.

* Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN §2.3: spectral
  convergence + L1 of log magnitudes, averaged over several FFT sizes) from
  ``auraloss.freq.MultiResolutionSTFTLoss``; Stable Audio's VAE trains with the same
  loss over FFT sizes 32..2048 with hop = size / 4.
* An optional multi-resolution log-mel L1 (DAC's mel loss, Kumar et al. 2023 §3.3;
  auraloss's own mel scale needs librosa, which this workspace does not ship).
* L1 on the waveform.
* KL divergence of the posterior to N(0, I), summed over channels and averaged over
  frames (Stable Audio), with a small weight (1e-4) so the latent keeps its detail.
"""

from __future__ import annotations

import auraloss
import torch
from torch import Tensor, nn
from unidit.tokenizers.audio_vae.metrics import log_mel
from unidit.tokenizers.gaussian import DiagonalGaussian

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)


DEFAULT_MEL_RESOLUTIONS = ((2048, 128), (1024, 64), (512, 32), (256, 16))  # (FFT size, mel bands)


def multi_resolution_stft_loss(fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES) -> auraloss.freq.MultiResolutionSTFTLoss:
    """auraloss MR-STFT loss with hop = fft / 4 and window = fft."""
    fft_sizes = list(fft_sizes)
    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=fft_sizes, hop_sizes=[n // 4 for n in fft_sizes], win_lengths=fft_sizes
    )


class MultiResolutionMelLoss(nn.Module):
    """Mean |log-mel(est) - log-mel(ref)| over several (FFT size, mel bands) resolutions."""

    def __init__(self, sample_rate: int, resolutions: tuple[tuple[int, int], ...] = DEFAULT_MEL_RESOLUTIONS):
        super().__init__()
        self.sample_rate, self.resolutions = sample_rate, resolutions

    def forward(self, est: Tensor, ref: Tensor) -> Tensor:  # (B, 1, T) each -> scalar
        losses = []
        for n_fft, n_mels in self.resolutions:
            est_mel = log_mel(est, self.sample_rate, n_fft, n_fft // 4, n_mels)  # (B, M, N)
            ref_mel = log_mel(ref, self.sample_rate, n_fft, n_fft // 4, n_mels)  # (B, M, N)
            losses.append((est_mel - ref_mel).abs().mean())
        return torch.stack(losses).mean()


class AudioVAELoss(nn.Module):
    """Weighted sum of MR-STFT (+ optional multi-resolution log-mel L1), waveform L1 and KL.

    ``forward(reconstruction, target, posterior)`` returns a dict of the weighted total
    ``loss`` and every unweighted term (``stft``, ``mel``, ``l1``, ``kl``).
    """

    def __init__(
        self,
        sample_rate: int,
        stft_weight: float = 1.0,
        mel_weight: float = 0.0,
        l1_weight: float = 1.0,
        kl_weight: float = 1e-4,
        fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES,
    ):
        super().__init__()
        self.stft_weight, self.mel_weight, self.l1_weight, self.kl_weight = (
            stft_weight,
            mel_weight,
            l1_weight,
            kl_weight,
        )
        self.stft = multi_resolution_stft_loss(fft_sizes)
        self.mel = MultiResolutionMelLoss(sample_rate) if mel_weight > 0 else None

    def forward(self, reconstruction: Tensor, target: Tensor, posterior: DiagonalGaussian) -> dict[str, Tensor]:
        if reconstruction.shape != target.shape:
            raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} differ")
        terms = {
            "stft": self.stft(reconstruction, target),  # (B, 1, T) pairs
            "l1": (reconstruction - target).abs().mean(),
            # summed over channels, averaged over frames (Stable Audio's normalisation, so its KL weight carries over)
            "kl": posterior.kl_elements().sum(dim=1).mean(dim=1).mean(),
        }
        loss = self.stft_weight * terms["stft"] + self.l1_weight * terms["l1"] + self.kl_weight * terms["kl"]
        if self.mel is not None:
            terms["mel"] = self.mel(reconstruction, target)
            loss = loss + self.mel_weight * terms["mel"]
        return {"loss": loss, **terms}
