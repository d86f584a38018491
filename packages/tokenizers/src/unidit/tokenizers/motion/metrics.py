"""Reconstruction metrics of the motion VQ-VAE (as reported by T2M-GPT / MoMask tables).

* MPJPE: mean per-joint position error (mm) between joints recovered with
  :func:`~unidit.tokenizers.motion.humanml3d.recover_from_ric` from de-normalised original and
  reconstructed features.
* feature L2: mean Euclidean distance between original and reconstructed normalised feature frames.
* codebook usage: fraction of codes used at least once; perplexity: exp of the entropy of code use.
"""

from __future__ import annotations

import torch
from torch import Tensor
from unidit.tokenizers.motion.humanml3d import recover_from_ric


def mpjpe_mm(original: Tensor, reconstruction: Tensor, num_joints: int = 22) -> Tensor:
    """Per-clip MPJPE (B,) in millimetres from de-normalised features (B, T, D)."""
    a = recover_from_ric(original, num_joints)  # (B, T, J, 3)
    b = recover_from_ric(reconstruction, num_joints)
    return 1000.0 * (a - b).norm(dim=-1).mean(dim=(-1, -2))


def feature_l2(original: Tensor, reconstruction: Tensor) -> Tensor:
    """Per-clip mean frame L2 distance (B,) of normalised features (B, T, D)."""
    return (original - reconstruction).norm(dim=-1).mean(dim=-1)


def code_statistics(indices: Tensor, codebook_size: int) -> dict[str, float]:
    """Usage fraction and perplexity of the codes in ``indices`` (any shape; residual VQ: first layer)."""
    if indices.ndim == 3:
        indices = indices[..., 0]
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).double()
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return {"usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp())}


@torch.no_grad()
def evaluate_clips(vqvae, clips: list[Tensor]) -> dict[str, float]:
    """Metrics over de-normalised clips (each (T, D), T a multiple of the code rate or trimmed to one)."""
    vqvae.eval()
    step = vqvae.frames_per_code
    errors, l2s, all_indices = [], [], []
    for clip in clips:
        usable = clip.shape[0] - clip.shape[0] % step
        if usable == 0:
            continue
        original = clip[None, :usable].float()  # (1, T, D)
        x = vqvae.normalize(original)
        reconstruction, indices, _ = vqvae(x)
        errors.append(mpjpe_mm(original, vqvae.denormalize(reconstruction), vqvae.config.num_joints))
        l2s.append(feature_l2(x, reconstruction))
        all_indices.append(indices.reshape(-1, *indices.shape[2:]))
    if not errors:
        raise ValueError(f"no clip has at least {step} frames (one code)")
    stats = code_statistics(torch.cat(all_indices), vqvae.config.codebook_size)
    return {
        "mpjpe_mm": float(torch.cat(errors).mean()),
        "feature_l2": float(torch.cat(l2s).mean()),
        "codebook_usage": stats["usage"],
        "perplexity": stats["perplexity"],
        "clips": len(errors),
    }
