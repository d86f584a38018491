"""The t2a metric table: event accuracy, Fréchet distance, and the guidance sweep.

Clips are generated from the captions of a kind-balanced subset of the
embedded test split, each as long as its real clip, and judged by the event
classifier (:mod:`unidit.tasks.t2a.classifier`) trained on the real training
clips:

- accuracy on generated clips beside accuracy on the real clips of the same
  captions (the ceiling), and their ratio;
- accuracy on the real clips passed through the audio VAE (encode, decode): what
  the latent model could reach at best, so a low score there blames the VAE;
- the Fréchet distance between generated and real clips in the classifier's
  embedding space (FAD, Kilgour et al. 2019, with this task's classifier in
  place of VGGish), with the distance between two halves of the real clips as
  the floor that finite samples allow;
- optionally, guidance scales w in {1, 3, 5} with and without the rescale of
  EzAudio (Hai et al. 2024, §3.4).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from unidit.tasks.t2a.classifier import classify, load_or_train_classifier, top_k_correct
from unidit.tasks.t2a.data import ClipSet
from unidit.training.latent_codec import decode_latents, encode_clips
from unidit.tasks.t2a.media import write_clips
from unidit.tasks.t2a.sounds import KINDS
from unidit.training.frechet import frechet_distance
from unidit.training.report import Evaluation, spread_indices
from unidit.training.sampling import ReportOptions, SamplingOptions, generate_in_batches


@dataclass
class T2AReport(ReportOptions):
    """What ``unidit fit/eval t2a`` generates and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` (steps, sampler, guidance, seed, batch size, ...) and

    Attributes:
        per_kind: test clips per event kind (by the caption's first event) that are generated.
        sweep: also measure every w in ``sweep_scales`` with phi = 0 and phi = ``sweep_rescale``.
        sweep_scales: guidance scales of the sweep.
        sweep_rescale: the phi of the sweep's rescaled rows.
        classifier_epochs: training epochs of the event classifier (cached once trained).
    """

    steps: int = 20
    sampler: Literal["euler", "heun", "midpoint"] = "heun"
    cfg_scale: float = 5.0
    cfg_rescale: float = 0.5
    per_kind: int = 24
    sweep: bool = False
    sweep_scales: list[float] = field(default_factory=lambda: [1.0, 3.0, 5.0])
    sweep_rescale: float = 0.5
    classifier_epochs: int = 6


def balanced_indices(clips: ClipSet, per_kind: int) -> np.ndarray:
    """The first ``per_kind`` test clips of every kind (by their first event), kind by kind."""
    if not clips.specs or any(spec is None for spec in clips.specs):
        raise ValueError("t2a metrics need the embedded test split (clips with event specs); "
                         "real AudioCaps / Clotho clips have no event labels")
    first = np.array([KINDS.index(spec.kinds[0]) for spec in clips.specs])
    return np.concatenate([np.flatnonzero(first == k)[:per_kind] for k in range(len(KINDS))])


def generate_clips(task, captions: list[str], seconds: list[float], options: SamplingOptions, batch_size: int,
                   desc: str = "sampling") -> list[np.ndarray]:
    """Clips for ``captions`` of the given durations, ``batch_size`` at a time."""
    batches = generate_in_batches(
        lambda part, opts: task.sample_audio(captions[part], seconds[part], options=opts),
        len(captions), options, batch_size, desc=desc,
    )
    return [clip for batch in batches for clip in batch]


def evaluate_t2a(task, clips: dict[str, ClipSet], report: T2AReport, *, data_seed: int = 0,
                 cache_dir: str | None = None) -> Evaluation:
    """Generate from balanced test captions and measure (see the module docstring)."""
    test, train = clips["test"], clips["train"]
    index = balanced_indices(test, report.per_kind)
    real = test.subset(index)
    kinds = [spec.kinds for spec in real.specs]
    classifier = load_or_train_classifier(
        train.waveforms, [spec.kinds for spec in train.specs], KINDS, sample_rate=train.sample_rate,
        data_seed=data_seed, cache_dir=cache_dir, epochs=report.classifier_epochs,
    )
    real_scores, real_embeddings = classify(classifier, real.waveforms)
    real_correct = top_k_correct(real_scores, kinds, KINDS)
    vae_correct = top_k_correct(classify(classifier, reconstruct(task.require_vae(), real.waveforms))[0], kinds, KINDS)

    def measure(scale: float, rescale: float, desc: str) -> tuple[dict, list[np.ndarray], np.ndarray]:
        options = dataclasses.replace(report.sampling(), cfg_scale=scale, cfg_rescale=rescale)
        generated = generate_clips(task, real.captions, real.seconds, options, report.batch_size, desc)
        scores, embeddings = classify(classifier, generated)
        correct = top_k_correct(scores, kinds, KINDS)
        row = {
            "cfg_scale": scale,
            "cfg_rescale": rescale,
            "accuracy_generated": float(correct.mean()),
            "accuracy_ratio": float(correct.mean() / max(real_correct.mean(), 1e-8)),
            "frechet_distance": frechet_distance(embeddings, real_embeddings),
        }
        return row, generated, correct

    main, generated, correct = measure(report.cfg_scale, report.cfg_rescale, "sampling test captions")
    first_kind = np.array([k[0] for k in kinds])
    metrics = {
        "accuracy_generated": main["accuracy_generated"],
        "accuracy_real": float(real_correct.mean()),
        "accuracy_ratio": main["accuracy_ratio"],
        "accuracy_vae_reconstruction": float(vae_correct.mean()),
        "frechet_distance": main["frechet_distance"],
        "frechet_real_halves": (
            frechet_distance(real_embeddings[::2], real_embeddings[1::2]) if len(real) >= 4 else None
        ),
        "accuracy_generated_by_kind": _by_kind(correct, first_kind),
        "accuracy_vae_reconstruction_by_kind": _by_kind(vae_correct, first_kind),
        "num_clips": len(real),
        "report": asdict(report),
    }
    if report.sweep:
        grid = [(w, phi) for w in report.sweep_scales for phi in (0.0, report.sweep_rescale)]
        metrics["sweep"] = [main if (w, phi) == (report.cfg_scale, report.cfg_rescale)
                            else measure(w, phi, f"sweep w={w:g} phi={phi:g}")[0] for w, phi in grid]
    captions = list(real.captions)
    return Evaluation(metrics, format_table(metrics),
                      lambda out: write_samples(out, generated, captions, real.sample_rate, report.num_written),
                      summary="wav samples and spectrogram PNGs")


def _by_kind(correct: np.ndarray, first_kind: np.ndarray) -> dict[str, float]:
    """Mean of ``correct`` over the clips of each kind (by the caption's first event)."""
    return {kind: float(correct[first_kind == kind].mean()) for kind in KINDS if (first_kind == kind).any()}


def reconstruct(vae, waveforms: list[np.ndarray]) -> list[np.ndarray]:
    """Clips ``(T_i,)`` encoded and decoded by the audio VAE, cut back to their lengths."""
    decoded = decode_latents(vae, encode_clips(vae, waveforms))
    return [clip[: len(wave)] for clip, wave in zip(decoded, waveforms)]


def write_samples(out_dir: str | Path, generated: list[np.ndarray], captions: list[str], sample_rate: int,
                  num_written: int = 8) -> Path:
    """wav + spectrogram PNG for clips spread over the kinds (up to ``num_written``), and overview.png."""
    picks = spread_indices(len(captions), num_written)
    write_clips(out_dir, [generated[i] for i in picks], [captions[i] for i in picks], sample_rate)
    return Path(out_dir)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_table(metrics: dict) -> str:
    """A plain-text metric table for the terminal."""
    lines = [
        f"event accuracy   generated {metrics['accuracy_generated']:.3f}   real (ceiling) "
        f"{metrics['accuracy_real']:.3f}   ratio {metrics['accuracy_ratio']:.3f}",
        f"event accuracy on VAE reconstructions of the real clips {metrics['accuracy_vae_reconstruction']:.3f}",
        f"Frechet distance {metrics['frechet_distance']:.3f}   "
        f"(real vs real, two halves: {_number(metrics['frechet_real_halves'])})",
        "",
        "kind".ljust(16) + "generated".rjust(10) + "VAE recon.".rjust(12),
        *[kind.ljust(16) + f"{value:10.3f}" + f"{metrics['accuracy_vae_reconstruction_by_kind'][kind]:12.3f}"
          for kind, value in metrics["accuracy_generated_by_kind"].items()],
    ]
    if "sweep" in metrics:
        lines += ["", "cfg w   phi   accuracy   ratio   Frechet"]
        lines += [f"{r['cfg_scale']:5.1f} {r['cfg_rescale']:5.2f} {r['accuracy_generated']:10.3f} "
                  f"{r['accuracy_ratio']:7.3f} {r['frechet_distance']:9.3f}" for r in metrics["sweep"]]
    return "\n".join(lines)
