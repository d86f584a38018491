"""The motion VQ-VAE's metric table: the VQ-VAE beside two trivial codecs, on named sets of clips.

Metrics come from :mod:`unidit.tokenizers.motion.metrics` (MPJPE in mm on joints recovered with
``recover_from_ric``, feature L2 of normalised frames, codebook usage and perplexity; the
reconstruction metrics of T2M-GPT / MoMask). The baselines make the numbers readable:

* ``keyframes /4``: every 4th frame kept (the VQ-VAE's code rate) and the rest linearly
  interpolated, i.e. the same temporal compression with unquantised 263-d frames;
* ``mean frame``: every frame replaced by the dataset Mean (what an all-zero normalised output decodes to).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor
from unidit.tokenizers.motion import MotionVQVAE, evaluate_clips, feature_l2, mpjpe_mm

HEADERS = {
    "mpjpe_mm": "MPJPE mm (lower)",
    "feature_l2": "feature L2 (lower)",
    "codebook_usage": "code usage",
    "perplexity": "perplexity",
}


def keyframe_baseline(clip: Tensor, step: int) -> Tensor:
    """(T, D) -> (T, D): frames 0, step, 2 step, ... kept, the others linearly interpolated."""
    keys = rearrange(clip[::step], "t d -> 1 d t")  # (1, D, ceil(T / step))
    if keys.shape[-1] == 1:
        return clip[:1].expand_as(clip).clone()
    positions = torch.arange(clip.shape[0], dtype=clip.dtype) / step  # (T,) in key units
    left = positions.floor().long().clamp(max=keys.shape[-1] - 2)
    weight = (positions - left).clamp(0.0, 1.0)[:, None]  # (T, 1); beyond the last key: hold it
    keys = rearrange(keys, "1 d t -> t d")
    return keys[left] * (1 - weight) + keys[left + 1] * weight


def baseline_metrics(vqvae: MotionVQVAE, clips: list[Tensor]) -> dict[str, dict[str, float]]:
    """MPJPE and feature L2 of the keyframe and mean-frame baselines (same frames as :func:`evaluate_clips`)."""
    step, joints = vqvae.frames_per_code, vqvae.config.num_joints
    rows = {"keyframes /4": ([], []), "mean frame": ([], [])}
    with torch.no_grad():
        for clip in clips:
            usable = clip.shape[0] - clip.shape[0] % step
            if usable == 0:
                continue
            original = clip[:usable].float()  # (T, D)
            guesses = {
                "keyframes /4": keyframe_baseline(original, step),
                "mean frame": vqvae.mean.expand_as(original),
            }
            for name, guess in guesses.items():
                rows[name][0].append(mpjpe_mm(original[None], guess[None], joints))
                rows[name][1].append(feature_l2(vqvae.normalize(original)[None], vqvae.normalize(guess)[None]))
    return {
        name: {"mpjpe_mm": float(torch.cat(e).mean()), "feature_l2": float(torch.cat(l2).mean())}
        for name, (e, l2) in rows.items()
    }


def evaluate_sets(vqvae: MotionVQVAE, sets: dict[str, list[Tensor]]) -> dict:
    """``{set: {"clips", "frames", "rows": {"vq-vae" | baseline: metrics}}}`` for each non-empty set."""
    vqvae.eval()
    results = {}
    for name, clips in sets.items():
        if not clips:
            continue
        for index, clip in enumerate(clips):
            if clip.ndim != 2 or clip.shape[1] != vqvae.config.feature_dim:
                raise ValueError(
                    f"{name}, clip {index}: expected features (T, {vqvae.config.feature_dim}), got {tuple(clip.shape)}"
                )
        model = evaluate_clips(vqvae, clips)
        count = model.pop("clips")
        frames = sum(c.shape[0] - c.shape[0] % vqvae.frames_per_code for c in clips)
        results[name] = {"clips": count, "frames": frames, "rows": {"vq-vae": model, **baseline_metrics(vqvae, clips)}}
    return results


def format_table(results: dict) -> str:
    """A plain-text table, one line per (set, reconstruction); ``-`` where a metric does not apply."""
    header = f"{'clips':<30}{'reconstruction':<16}" + "".join(f"{h:>20}" for h in HEADERS.values())
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        label = f"{name} ({result['clips']})"
        for row, values in result["rows"].items():
            cells = "".join(f"{values[m]:>20.3f}" if m in values else f"{'-':>20}" for m in HEADERS)
            lines.append(f"{label:<30}{row:<16}{cells}")
            label = ""
    return "\n".join(lines)
