"""The motion task's report: what can be measured before the learned text-motion evaluator exists.

Guo et al.'s FID / R-precision need a motion encoder and a text encoder trained contrastively
(not built yet); until then the report measures, on the held-out split:

- **in-betweening**: the middle ``inbetween_fraction`` of each clip's codes regenerated from
  its caption and the rest; the fraction of given codes kept exactly (must be 1), the code
  accuracy of the regenerated span against the clip's own codes;
- **masked CE at uniform masking**: cross-entropy of the test codes with 30 / 60 / 90 % of them
  masked uniformly at random (the same corruption for either schedule, so priority and cosine
  models compare on one footing);
- **text-to-motion**: one motion per clip from its first caption at the clip's length; the Fréchet
  distance of time-pooled normalised features ("pooled-feature FD", *not* Guo's FID: no learned
  encoder) to the real clips, beside the VQ-VAE reconstructions' (the code path's ceiling) and one
  half of the real clips against the other (the sample-size floor); diversity (mean distance of
  random pairs of pooled features) of generated and real motions;
- **length predictor**: mean absolute error in codes of the predicted lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from unidit.backbones.masked_diffusion import MaskedDiffusion
from unidit.tasks.motion.data import MotionSplit
from unidit.tasks.motion.media import write_motions
from unidit.training.frechet import frechet_distance
from unidit.training.masked_task import MaskedSamplingOptions
from unidit.training.report import Evaluation, spread_indices
from unidit.training.sampling import at_least, generate_in_batches


@dataclass
class MotionReport(MaskedSamplingOptions):
    """Sampling options plus what the motion report needs.

    Attributes:
        batch_size: motions generated per batch.
        num_written: motions written as media files after the metrics.
        max_clips: held-out clips evaluated (0 = all).
        inbetween_fraction: middle fraction of each clip's codes regenerated in the in-betweening rows.
        diversity_pairs: random pairs of motions for the diversity (Guo et al. use 300).
    """

    batch_size: int = 32
    num_written: int = 8
    max_clips: int = 100
    inbetween_fraction: float = 0.4
    diversity_pairs: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("batch_size", self.batch_size, 1)
        at_least("num_written", self.num_written, 0)
        at_least("max_clips", self.max_clips, 0)
        at_least("diversity_pairs", self.diversity_pairs, 1)
        if not 0.0 < float(self.inbetween_fraction) < 1.0:
            raise ValueError(f"inbetween_fraction: expected a number in (0, 1), got {self.inbetween_fraction}")


def pooled(task, motions: list[np.ndarray]) -> np.ndarray:
    """(N, D): each motion's normalised features averaged over time."""
    vq = task.require_vqvae()
    mean, std = vq.mean.cpu().numpy(), vq.std.cpu().numpy()
    return np.stack([((m - mean) / std).mean(axis=0) for m in motions]).astype(np.float64)


def diversity(features: np.ndarray, pairs: int, seed: int = 0) -> float:
    """Mean L2 distance between ``pairs`` random pairs of rows (Guo et al.'s diversity)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(features), pairs), rng.integers(0, len(features), pairs)
    return float(np.linalg.norm(features[a] - features[b], axis=-1).mean())


@torch.no_grad()
def uniform_masking_ce(task, codes: list[torch.Tensor], captions: list[str], levels=(0.3, 0.6, 0.9)) -> dict:
    """Cross-entropy of ``codes`` with a ``level`` fraction masked uniformly (seeded), per level."""
    from unidit.tasks.motion.task import pad_codes

    network = task.sampling_network()
    uniform = MaskedDiffusion(task.diffusion.codebook_size, "cosine")
    padded, valid = pad_codes(codes, task.hparams.max_tokens)
    padded, valid = padded.to(task.device), valid.to(task.device)
    context, context_mask = task.encode_captions(captions)
    out = {}
    for level in levels:
        t = torch.full((len(codes),), 2 / np.pi * float(np.arcsin(level)), device=task.device)  # gamma(t) = level

        def logits(tokens, t_):
            return network(tokens, t_, context, context_mask, valid)

        out[f"{level:.1f}"] = float(uniform.loss(logits, padded, valid, generator=torch.Generator().manual_seed(0), t=t))
    return out


@torch.no_grad()
def evaluate_motion(task, split: MotionSplit, report: MotionReport, fps: float = 20.0) -> Evaluation:
    """Generate for the held-out clips of ``split`` and measure (see the module docstring)."""
    clips = split.clips[: report.max_clips or None]
    if len(clips) < 4:
        raise ValueError(f"the evaluation split has {len(clips)} clips; need at least 4")
    captions = [clip.captions[0].text for clip in clips]
    codes = task.encode_features([clip.features for clip in clips], [clip.name for clip in clips])
    codes = [c[: task.hparams.max_tokens] for c in codes]
    lengths = [len(c) for c in codes]
    options = report.sampling()
    generated_codes = [c for batch in generate_in_batches(
        lambda part, opts: task.sample_codes(captions[part], lengths[part], options=opts),
        len(clips), options, report.batch_size, desc="text-to-motion") for c in batch]
    generated = task.decode_codes(generated_codes)
    real = [clip.features[: 4 * n] for clip, n in zip(clips, lengths)]
    reconstructed = task.decode_codes(codes)

    given = []
    for n in lengths:
        span = max(1, round(report.inbetween_fraction * n))
        start = (n - span) // 2
        given.append((torch.arange(n) < start) | (torch.arange(n) >= start + span))
    filled = [c for batch in generate_in_batches(
        lambda part, opts: task.sample_codes(captions[part], known=codes[part], given=given[part], options=opts),
        len(clips), options, report.batch_size, desc="in-betweening") for c in batch]
    kept = float(np.mean([torch.equal(f[g], c[g]) for f, g, c in zip(filled, given, codes)]))
    span_accuracy = float(torch.cat([(f[~g] == c[~g]).float() for f, g, c in zip(filled, given, codes)]).mean())

    predicted = []
    for start in range(0, len(captions), report.batch_size):
        predicted += task.predict_lengths(captions[start : start + report.batch_size])
    length_mae = float(np.abs(np.array(predicted) - np.array(lengths)).mean())

    real_p, gen_p, rec_p = pooled(task, real), pooled(task, generated), pooled(task, reconstructed)
    half = len(real_p) // 2
    metrics = {
        "clips": len(clips),
        "schedule": task.diffusion.schedule,
        "inbetween_given_kept_exactly": kept,
        "inbetween_span_code_accuracy": span_accuracy,
        "masked_ce_uniform": uniform_masking_ce(task, codes, captions),
        "pooled_fd": {"generated": frechet_distance(gen_p, real_p), "vq_reconstruction": frechet_distance(rec_p, real_p),
                      "real_half_vs_half": frechet_distance(real_p[:half], real_p[half:])},
        "diversity": {"generated": diversity(gen_p, report.diversity_pairs), "real": diversity(real_p, report.diversity_pairs)},
        "length_mae_codes": length_mae,
        "sampling": options.__dict__,
    }
    chosen = spread_indices(len(clips), report.num_written)
    return Evaluation(metrics, format_table(metrics),
                      lambda folder: write_motions(folder, [generated[i] for i in chosen], [captions[i] for i in chosen],
                                                   fps, task.require_vqvae().config.num_joints),
                      summary="motions (.npy features + joints, stick-figure .mp4 / .gif), captions.txt and strip.png")


def format_table(metrics: dict) -> str:
    fd, div, ce = metrics["pooled_fd"], metrics["diversity"], metrics["masked_ce_uniform"]
    rows = [
        f"motion report ({metrics['clips']} held-out clips, {metrics['schedule']} schedule)",
        f"  in-betweening: given codes kept exactly {metrics['inbetween_given_kept_exactly']:.3f}, "
        f"span code accuracy {metrics['inbetween_span_code_accuracy']:.3f}",
        "  masked CE at uniform masking: " + ", ".join(f"{k}: {v:.3f}" for k, v in ce.items()),
        f"  pooled-feature FD: generated {fd['generated']:.3f} | VQ reconstruction {fd['vq_reconstruction']:.3f} | "
        f"real half vs half {fd['real_half_vs_half']:.3f}",
        f"  diversity: generated {div['generated']:.3f} | real {div['real']:.3f}",
        f"  length predictor MAE: {metrics['length_mae_codes']:.2f} codes",
    ]
    return "\n".join(rows)
