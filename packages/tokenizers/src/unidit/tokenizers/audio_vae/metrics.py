"""Reconstruction metrics of an audio autoencoder, batched over clips.

* :func:`mr_stft_distance` - multi-resolution STFT distance (Yamamoto et al. 2020):
  spectral convergence + mean |log magnitude difference|, averaged over FFT sizes
  2048..64 (hop = size / 4). 0 for identical signals; lower is better.
* :func:`si_sdr` - scale-invariant signal-to-distortion ratio in dB (Le Roux et al.
  2019, "SDR - half-baked or well done?", eq. 3 with zero-mean signals); higher is better.
* :func:`mel_l1` - mean |log-mel difference| (64 mel bands, 1024-point FFT, hop 256);
  lower is better.

All take waveforms (B, T) or (B, 1, T) and return one value per clip (B,).
:func:`reconstruction_metrics` runs a VAE over clips of any length and averages.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio
from torch import Tensor
from tqdm.auto import tqdm
from unidit.tokenizers.audio_io import resample
from unidit.tokenizers.audio_vae.model import pad_to_hop
from unidit.tokenizers.audio_vae.tiling import tiled_decode, tiled_encode

METRIC_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
MAGNITUDE_FLOOR = 1e-5


def _as_batch(wav: Tensor, name: str) -> Tensor:
    if wav.dim() == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]  # (B, T)
    if wav.dim() != 2:
        raise ValueError(f"{name}: expected waveforms of shape (B, T) or (B, 1, T), got {tuple(wav.shape)}")
    return wav.float()


def _pair(ref: Tensor, est: Tensor) -> tuple[Tensor, Tensor]:
    ref, est = _as_batch(ref, "ref"), _as_batch(est, "est")
    if ref.shape != est.shape:
        raise ValueError(f"ref {tuple(ref.shape)} and est {tuple(est.shape)} must have the same shape")
    return ref, est


def _magnitude(wav: Tensor, n_fft: int) -> Tensor:  # (B, T) -> (B, F, N)
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(wav, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)  # (B, F, N)
    return spec.abs().clamp_min(MAGNITUDE_FLOOR)


def mr_stft_distance(ref: Tensor, est: Tensor, fft_sizes: tuple[int, ...] = METRIC_FFT_SIZES) -> Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions: (B,)."""
    ref, est = _pair(ref, est)
    total = ref.new_zeros(ref.shape[0])
    for n_fft in fft_sizes:
        ref_mag, est_mag = _magnitude(ref, n_fft), _magnitude(est, n_fft)  # (B, F, N)
        convergence = (ref_mag - est_mag).flatten(1).norm(dim=1) / ref_mag.flatten(1).norm(dim=1)  # (B,)
        log_l1 = (ref_mag.log() - est_mag.log()).abs().flatten(1).mean(dim=1)  # (B,)
        total = total + convergence + log_l1
    return total / len(fft_sizes)


def si_sdr(ref: Tensor, est: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB: (B,). Invariant to rescaling ``est``."""
    ref, est = _pair(ref, est)
    ref = ref - ref.mean(dim=1, keepdim=True)  # (B, T)
    est = est - est.mean(dim=1, keepdim=True)  # (B, T)
    scale = (est * ref).sum(dim=1, keepdim=True) / (ref.pow(2).sum(dim=1, keepdim=True) + eps)  # (B, 1)
    target = scale * ref  # (B, T)
    noise = est - target  # (B, T)
    ratio = target.pow(2).sum(dim=1) / (noise.pow(2).sum(dim=1) + eps)  # (B,)
    return 10 * torch.log10(ratio + eps)  # silence as estimate: 10 log10(eps) = -80 dB


@lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=1.0
    )


def log_mel(wav: Tensor, sample_rate: int, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 64) -> Tensor:
    """Natural-log mel magnitudes (B, n_mels, N) of waveforms (B, T) or (B, 1, T)."""
    wav = _as_batch(wav, "wav")
    mel = _mel_transform(sample_rate, n_fft, hop_length, n_mels).to(wav.device)(wav)  # (B, M, N)
    return mel.clamp_min(MAGNITUDE_FLOOR).log()


def mel_l1(ref: Tensor, est: Tensor, sample_rate: int) -> Tensor:
    """Mean |log-mel(ref) - log-mel(est)|: (B,)."""
    ref, est = _pair(ref, est)
    return (log_mel(ref, sample_rate) - log_mel(est, sample_rate)).abs().flatten(1).mean(dim=1)


def clip_metrics(ref: Tensor, est: Tensor, sample_rate: int) -> dict[str, Tensor]:
    """All three metrics for a batch of equal-length clips: name -> (B,)."""
    return {
        "mr_stft": mr_stft_distance(ref, est),
        "si_sdr": si_sdr(ref, est),
        "mel_l1": mel_l1(ref, est, sample_rate),
    }


def _as_tensor(clip) -> Tensor:
    clip = torch.as_tensor(np.asarray(clip, dtype=np.float32))
    if clip.dim() != 1 or clip.numel() == 0:
        raise ValueError(f"expected a non-empty mono clip of shape (T,), got {tuple(clip.shape)}")
    return clip


@torch.no_grad()
def reconstruct(vae, clip, tile_latents: int = 256, overlap_latents: int = 16) -> np.ndarray:
    """VAE reconstruction (posterior mean) of one mono clip (T,), padded to the hop and cropped back."""
    wav = _as_tensor(clip).to(vae.latent_mean.device)
    padded = pad_to_hop(wav, vae.hop_length)[None, None]  # (1, 1, T_pad)
    if padded.shape[-1] // vae.hop_length > tile_latents:
        out = tiled_decode(vae, tiled_encode(vae, padded, tile_latents, overlap_latents), tile_latents, overlap_latents)
    else:
        out = vae.decode(vae.encode(padded).mean)  # (1, 1, T_pad)
    return out[0, 0, : wav.shape[0]].cpu().numpy()


def average_metrics(refs: list, ests: list, sample_rate: int) -> dict[str, float]:
    """Mean of each metric over pairs of clips of any (pairwise equal) lengths."""
    if not refs or len(refs) != len(ests):
        raise ValueError(f"expected equally many (> 0) reference and estimated clips, got {len(refs)} and {len(ests)}")
    values: dict[str, list[float]] = {}
    for ref, est in zip(refs, ests):
        for name, value in clip_metrics(_as_tensor(ref)[None], _as_tensor(est)[None], sample_rate).items():
            values.setdefault(name, []).append(float(value[0]))
    return {name: float(np.mean(v)) for name, v in values.items()}


@torch.no_grad()
def reconstruction_metrics(
    vae, clips: list, tile_latents: int = 256, overlap_latents: int = 16, progress: bool = True
) -> dict[str, float]:
    """Mean MR-STFT distance, SI-SDR and mel L1 of the VAE's reconstructions of ``clips`` (T,) each."""
    was_training = vae.training
    vae.eval()
    ests = [
        reconstruct(vae, clip, tile_latents, overlap_latents)
        for clip in tqdm(clips, desc="reconstructing", disable=not progress, leave=False)
    ]
    vae.train(was_training)
    return average_metrics(clips, ests, vae.sample_rate)


def lowpass_baseline(clip, sample_rate: int, factor: int = 4) -> np.ndarray:
    """Trivial codec for reference rows: resample to sample_rate / factor and back (T,)."""
    clip = np.asarray(clip, dtype=np.float32)
    low = resample(clip, sample_rate, sample_rate // factor)
    return resample(low, sample_rate // factor, sample_rate)[: clip.shape[0]]


def baseline_metrics(clips: list, sample_rate: int) -> dict[str, dict[str, float]]:
    """Metrics of two trivial reconstructions: silence, and a 4x decimate + upsample."""
    return {
        "silence": average_metrics(clips, [np.zeros_like(np.asarray(c, dtype=np.float32)) for c in clips], sample_rate),
        "lowpass_4x": average_metrics(clips, [lowpass_baseline(c, sample_rate) for c in clips], sample_rate),
    }
