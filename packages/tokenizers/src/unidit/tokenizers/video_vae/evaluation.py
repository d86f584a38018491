"""Reconstruction quality of a video VAE beside two trivial baselines, and a side-by-side figure.

A PSNR means little alone, so every row set compares the VAE with baselines
of a comparable size: ``bilinear`` keeps every frame area-downsampled by the
VAE's spatial factor ``s`` and upsamples it bilinearly (``3 * tc`` numbers per
latent position, against the latent's ``C``); ``mean frame`` repeats the clip's
average frame (perfect for static backgrounds, blind to motion).
Metrics are :func:`~unidit.tokenizers.video_vae.metrics.psnr` and
:func:`~unidit.tokenizers.video_vae.metrics.ssim` on videos in [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from tqdm import tqdm

from unidit.tokenizers.video_io import write_mp4
from unidit.tokenizers.video_vae.data import to_model_range, to_uint8
from unidit.tokenizers.video_vae.metrics import psnr, ssim
from unidit.tokenizers.video_vae.model import VideoVAE


@torch.no_grad()
def reconstruct(vae: VideoVAE, clips: Sequence[np.ndarray], batch_size: int = 8, desc: str = "reconstructing") -> Tensor:
    """Posterior-mean reconstructions ``(N, 3, F, H, W)`` in [-1, 1] of uint8 clips ``(F, H, W, 3)``."""
    vae.eval()
    device = next(vae.parameters()).device
    out = []
    starts = range(0, len(clips), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=len(starts) < 3):
        video = to_model_range(np.stack(clips[start : start + batch_size])).to(device)  # (B, 3, F, H, W)
        out.append(vae.decode(vae.encode(video).mode()).clamp(-1, 1).cpu())
    return torch.cat(out)


def bilinear_baseline(video: Tensor, factor: int) -> Tensor:
    """Each frame area-downsampled by ``factor`` and bilinearly upsampled back: ``(B, 3, F, H, W)``."""
    frames = rearrange(video, "b c f h w -> (b f) c h w")
    small = F.avg_pool2d(frames, factor)  # (B*F, 3, H/factor, W/factor)
    big = F.interpolate(small, size=frames.shape[-2:], mode="bilinear", align_corners=False)
    return rearrange(big, "(b f) c h w -> b c f h w", b=video.shape[0]).clamp(-1, 1)


def mean_frame_baseline(video: Tensor) -> Tensor:
    """The clip's average frame, repeated: ``(B, 3, F, H, W)``."""
    return video.mean(dim=2, keepdim=True).expand_as(video)


def score(recon: Tensor, target: Tensor) -> dict[str, float]:
    return {"psnr": float(psnr(recon, target).mean()), "ssim": float(ssim(recon, target).mean())}


def evaluate_reconstruction(
    vae: VideoVAE, clips: Sequence[np.ndarray], batch_size: int = 8, desc: str = "reconstructing"
) -> tuple[dict[str, dict[str, float]], Tensor]:
    """``({"vae"|"bilinear"|"mean frame": {"psnr", "ssim"}}, reconstructions)`` over uint8 clips."""
    target = to_model_range(np.stack(clips))  # (N, 3, F, H, W)
    recon = reconstruct(vae, clips, batch_size, desc)
    rows = {
        "vae": score(recon, target),
        f"bilinear x{vae.spatial_compression}": score(bilinear_baseline(target, vae.spatial_compression), target),
        "mean frame": score(mean_frame_baseline(target), target),
    }
    return rows, recon


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """``results[dataset][method] = {"psnr", "ssim"}`` as an aligned text table."""
    width = max([4, *(len(name) for name in results)])
    lines = [f"{'data':<{width}}  {'method':<14} {'PSNR dB':>8} {'SSIM':>7}"]
    for dataset, rows in results.items():
        for method, values in rows.items():
            lines.append(f"{dataset:<{width}}  {method:<14} {values['psnr']:>8.2f} {values['ssim']:>7.4f}")
    return "\n".join(lines)


def write_side_by_side(
    out_dir: str | os.PathLike, name: str, original: np.ndarray, recon: Tensor | np.ndarray, fps: float = 8.0
) -> tuple[Path, Path]:
    """``<name>.png`` (frame strip, original over reconstruction) and ``<name>.mp4`` (side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recon = to_uint8(recon) if torch.is_tensor(recon) else recon  # (F, H, W, 3)
    mp4 = write_mp4(out / f"{name}.mp4", np.concatenate([original, recon], axis=2), fps)
    shown = np.linspace(0, len(original) - 1, min(len(original), 6)).round().astype(int)
    fig, axes = plt.subplots(2, len(shown), figsize=(1.6 * len(shown), 3.4), squeeze=False)
    for col, frame in enumerate(shown):
        for row, (label, clip) in enumerate((("original", original), ("VAE", recon))):
            axes[row, col].imshow(clip[frame])
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(f"frame {frame}", fontsize=8)
            if col == 0:
                axes[row, col].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    png = out / f"{name}.png"
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)
    return png, mp4
