"""The motion task's report: Guo et al.'s text-to-motion metrics, plus the code-level checks of this task.

On the held-out split, one motion is generated per clip from its first caption at the clip's
length, and three sets are measured with the learned motion / text evaluator
(:mod:`unidit.tasks.motion.evaluator_training`, trained on the training split, cached):

- **real test** (the ceiling): the held-out clips themselves against their captions;
- **VQ reconstruction**: the clips' own codes decoded (what the code path can reach at best);
- **generated**: the model's motions.

Each row gives FID to the real test clips, R-precision top 1 / 2 / 3 (pools of 32), MM-distance
and diversity (:mod:`unidit.tasks.motion.text_motion_metrics`); the generated row adds
multimodality (``mm_samples`` motions for each of ``mm_captions`` captions, ``mm_pairs`` pairs;
Guo et al. use 100 × 30 × 10). The FID floors are one half of the real clips against the other
(what sample size alone costs), and as many training clips against the test clips (an independent
real set of the same size as the generated one: the like-for-like floor). Code-level rows, on the
same clips:

- **in-betweening**: the middle ``inbetween_fraction`` of each clip's codes regenerated from its
  caption and the rest; the fraction of given codes kept exactly (must be 1), the code accuracy of
  the regenerated span;
- **masked CE at uniform masking**: cross-entropy of the test codes with 30 / 60 / 90 % of them
  masked uniformly at random (the same corruption for either schedule);
- **length predictor**: mean absolute error in codes of the predicted lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from unidit.backbones.masked_diffusion import MaskedDiffusion
from unidit.tasks.motion.data import MotionSplit
from unidit.tasks.motion.evaluator_training import (
    CaptionStates,
    EvaluatorSettings,
    embed_captions,
    embed_motions,
    load_or_train_motion_evaluator,
)
from unidit.tasks.motion.media import write_motions
from unidit.tasks.motion.text_motion_metrics import diversity, matching_distance, multimodality, r_precision
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
        r_precision_pool: motions each caption is ranked among (Guo et al. use 32; fewer held-out
            clips than this shrink the pool to their number, and the report says so).
        mm_captions / mm_samples / mm_pairs: multimodality: captions, motions per caption, pairs per
            caption (Guo et al.: 100 / 30 / 10).
        evaluator_epochs / evaluator_dim: training passes and embedding width of the evaluator.

    ``cfg_scale`` defaults to 1.5 here (MoMask uses 4): on the embedded data R-precision top-3 was
    0.41 / 0.49 / 0.56 / 0.58 at CFG 7 / 4 / 2 / 1.5 (docs/tasks/motion.md), and ``unidit sample
    motion`` takes its defaults from this report.
    """

    cfg_scale: float = 1.5
    batch_size: int = 32
    num_written: int = 8
    max_clips: int = 100
    inbetween_fraction: float = 0.4
    diversity_pairs: int = 300
    r_precision_pool: int = 32
    mm_captions: int = 20
    mm_samples: int = 10
    mm_pairs: int = 10
    evaluator_epochs: int = 20
    evaluator_dim: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, low in (("batch_size", 1), ("num_written", 0), ("max_clips", 0), ("diversity_pairs", 1),
                          ("r_precision_pool", 2), ("mm_captions", 0), ("mm_samples", 2), ("mm_pairs", 1),
                          ("evaluator_epochs", 1), ("evaluator_dim", 1)):
            at_least(name, getattr(self, name), low)
        if not 0.0 < float(self.inbetween_fraction) < 1.0:
            raise ValueError(f"inbetween_fraction: expected a number in (0, 1), got {self.inbetween_fraction}")

    def evaluator_settings(self) -> EvaluatorSettings:
        return EvaluatorSettings(epochs=self.evaluator_epochs, embed_dim=self.evaluator_dim)


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


def caption_states_for(task) -> CaptionStates:
    """The evaluator's MiniLM states, sharing the task's loaded encoder when it is the default MiniLM."""
    return CaptionStates(task.captions.encoder if task.text_encoder_name is None else None)


def floor_set(train: MotionSplit, count: int, task) -> list[np.ndarray]:
    """``count`` training clips cut as the test clips are (whole codes, at most ``max_tokens``): an
    independent real set of the test set's size, the like-for-like floor of the generated row's FID."""
    frames = 4 * task.hparams.max_tokens
    clips = [clip.features[:frames] for clip in train.clips[:count]]
    return [c[: len(c) // 4 * 4] for c in clips if len(c) >= 4]


def metric_row(text: np.ndarray, motion: np.ndarray, real: np.ndarray, report: MotionReport, pool: int) -> dict:
    """FID to ``real``, R-precision, MM-distance and diversity of paired embeddings ``(N, E)``."""
    return {"fid": frechet_distance(motion, real), "r_precision": r_precision(text, motion, pool).tolist(),
            "mm_distance": matching_distance(text, motion), "diversity": diversity(motion, report.diversity_pairs)}


@torch.no_grad()
def multimodality_of(task, evaluator, captions: list[str], lengths: list[int], report: MotionReport,
                     options: MaskedSamplingOptions) -> float | None:
    """``mm_samples`` motions for each of ``mm_captions`` captions spread over the clips; Guo's multimodality."""
    chosen = spread_indices(len(captions), report.mm_captions)
    if not chosen:
        return None
    repeated = [captions[i] for i in chosen for _ in range(report.mm_samples)]
    sizes = [lengths[i] for i in chosen for _ in range(report.mm_samples)]
    codes = [c for batch in generate_in_batches(
        lambda part, opts: task.sample_codes(repeated[part], sizes[part], options=opts),
        len(repeated), options.with_seed(options.seed + 10_000), report.batch_size, desc="multimodality")
        for c in batch]
    embedded = embed_motions(evaluator, task.decode_codes(codes))  # (C * S, E)
    return multimodality(rearrange(embedded, "(c s) e -> c s e", s=report.mm_samples), report.mm_pairs)


@torch.no_grad()
def evaluate_motion(task, train: MotionSplit, test: MotionSplit, report: MotionReport, fps: float = 20.0,
                    cache_dir: str | None = None) -> Evaluation:
    """Generate for the held-out clips of ``test`` and measure (see the module docstring); the
    evaluator is trained on ``train`` (or read from ``cache_dir``)."""
    clips = test.clips[: report.max_clips or None]
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

    states = caption_states_for(task)
    evaluator = load_or_train_motion_evaluator(train, states, report.evaluator_settings(), cache_dir, progress=True)
    text = embed_captions(evaluator, states, captions)  # (N, E)
    real_e = embed_motions(evaluator, real)
    pool = min(report.r_precision_pool, len(clips))
    rows = {name: metric_row(text, embed_motions(evaluator, motions) if motions is not None else real_e, real_e,
                             report, pool)
            for name, motions in (("real", None), ("vq_reconstruction", reconstructed), ("generated", generated))}
    rows["generated"]["multimodality"] = multimodality_of(task, evaluator, captions, lengths, report, options)
    metrics = {
        "clips": len(clips),
        "schedule": task.diffusion.schedule,
        "evaluator": {"loss": "margin (Guo et al. 2022)", "embed_dim": evaluator.embed_dim,
                      "epochs": report.evaluator_epochs, "train_clips": len(train.clips)},
        "r_precision_pool": pool,
        "multimodality_setup": {"captions": min(report.mm_captions, len(clips)), "samples": report.mm_samples,
                                "pairs": report.mm_pairs},
        "text_to_motion": rows,
        "fid_floor": {"train_vs_test": frechet_distance(embed_motions(evaluator, floor_set(train, len(clips), task)),
                                                        real_e),
                      "real_half_vs_half": frechet_distance(real_e[0::2], real_e[1::2])},
        "inbetween_given_kept_exactly": kept,
        "inbetween_span_code_accuracy": span_accuracy,
        "masked_ce_uniform": uniform_masking_ce(task, codes, captions),
        "length_mae_codes": length_mae,
        "sampling": options.__dict__,
    }
    chosen = spread_indices(len(clips), report.num_written)
    return Evaluation(metrics, format_table(metrics),
                      lambda folder: write_motions(folder, [generated[i] for i in chosen], [captions[i] for i in chosen],
                                                   fps, task.require_vqvae().config.num_joints),
                      summary="motions (.npy features + joints, .bvh, stick-figure .mp4 / .gif), captions.txt "
                              "and strip.png")


def format_table(metrics: dict) -> str:
    rows, pool, ce = metrics["text_to_motion"], metrics["r_precision_pool"], metrics["masked_ce_uniform"]
    setup, floor = metrics["multimodality_setup"], metrics["fid_floor"]
    lines = [
        f"motion report ({metrics['clips']} held-out clips, {metrics['schedule']} schedule; learned evaluator, "
        f"{metrics['evaluator']['embed_dim']}-d, margin loss, {metrics['evaluator']['train_clips']} training clips)",
        f"  {'':<18} {'FID':>8} {'R@1':>6} {'R@2':>6} {'R@3':>6} {'MM-dist':>8} {'diversity':>9} {'multimod.':>9}",
    ]
    for name, label in (("real", "real test"), ("vq_reconstruction", "VQ reconstruction"), ("generated", "generated")):
        row = rows[name]
        fid = "-" if name == "real" else f"{row['fid']:.3f}"
        mm = row.get("multimodality")
        lines.append(f"  {label:<18} {fid:>8} " + " ".join(f"{r:6.3f}" for r in row["r_precision"])
                     + f" {row['mm_distance']:8.3f} {row['diversity']:9.3f} {'-' if mm is None else f'{mm:.3f}':>9}")
    lines += [
        f"  FID floor: {metrics['clips']} training clips vs the test clips {floor['train_vs_test']:.3f}; "
        f"real test half vs half {floor['real_half_vs_half']:.3f}",
        f"  R-precision in pools of {pool} (chance {1 / pool:.3f} / {2 / pool:.3f} / {3 / pool:.3f}); multimodality: "
        f"{setup['captions']} captions x {setup['samples']} motions, {setup['pairs']} pairs",
        f"  in-betweening: given codes kept exactly {metrics['inbetween_given_kept_exactly']:.3f}, "
        f"span code accuracy {metrics['inbetween_span_code_accuracy']:.3f}",
        "  masked CE at uniform masking: " + ", ".join(f"{k}: {v:.3f}" for k, v in ce.items()),
        f"  length predictor MAE: {metrics['length_mae_codes']:.2f} codes",
    ]
    return "\n".join(lines)
