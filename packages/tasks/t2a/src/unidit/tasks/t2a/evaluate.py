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

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from unidit.tasks.t2a.classifier import classify, load_or_train_classifier, top_k_correct
from unidit.tasks.t2a.data import ClipSet
from unidit.tasks.t2a.latent_codec import decode_latents, encode_clips
from unidit.tasks.t2a.media import write_clips
from unidit.tasks.t2a.sounds import KINDS
from unidit.training.frechet import frechet_distance


@dataclass
class T2AReport:
    """What ``unidit fit/eval t2a`` generates and measures.

    Attributes:
        per_kind: test clips per event kind (by the caption's first event) that are generated.
        steps: ODE steps of the sampler.
        sampler: euler, heun or midpoint.
        cfg_scale: classifier-free guidance scale w (1 = no guidance).
        cfg_rescale: EzAudio's rescale phi; 0 = plain CFG.
        shift: sampling time shift (None: the training shift).
        cache_interval: recompute the backbone's blocks every N network calls (1 = no step caching).
        sweep: also measure every w in ``sweep_scales`` with phi = 0 and phi = ``sweep_rescale``.
        sweep_scales: guidance scales of the sweep.
        sweep_rescale: the phi of the sweep's rescaled rows.
        batch_size: clips generated per batch.
        num_written: generated clips written as wav + png after the metrics.
        classifier_epochs: training epochs of the event classifier (cached once trained).
        seed: noise seed.
    """

    per_kind: int = 24
    steps: int = 20
    sampler: str = "heun"
    cfg_scale: float = 5.0
    cfg_rescale: float = 0.5
    shift: float | None = None
    cache_interval: int = 1
    sweep: bool = False
    sweep_scales: list[float] = field(default_factory=lambda: [1.0, 3.0, 5.0])
    sweep_rescale: float = 0.5
    batch_size: int = 32
    num_written: int = 8
    classifier_epochs: int = 6
    seed: int = 0


@dataclass
class T2AResult:
    """Metrics plus the generated clips (for writing) of one evaluation."""

    metrics: dict
    generated: list[np.ndarray]
    captions: list[str]
    sample_rate: int


def balanced_indices(clips: ClipSet, per_kind: int) -> np.ndarray:
    """The first ``per_kind`` test clips of every kind (by their first event), kind by kind."""
    if not clips.specs or any(spec is None for spec in clips.specs):
        raise ValueError("t2a metrics need the embedded test split (clips with event specs); "
                         "real AudioCaps / Clotho clips have no event labels")
    first = np.array([KINDS.index(spec.kinds[0]) for spec in clips.specs])
    return np.concatenate([np.flatnonzero(first == k)[:per_kind] for k in range(len(KINDS))])


def generate_clips(task, captions: list[str], seconds: list[float], report: T2AReport, cfg_scale: float,
                   cfg_rescale: float, desc: str = "sampling") -> list[np.ndarray]:
    """Clips for ``captions`` of the given durations, ``report.batch_size`` at a time."""
    out: list[np.ndarray] = []
    starts = range(0, len(captions), report.batch_size)
    for number, start in enumerate(tqdm(starts, desc=desc, unit="batch")):
        chunk = slice(start, start + report.batch_size)
        out += task.sample_audio(captions[chunk], seconds[chunk], steps=report.steps, sampler=report.sampler,
                                 cfg_scale=cfg_scale, cfg_rescale=cfg_rescale, seed=report.seed + number,
                                 shift=report.shift, cache_interval=report.cache_interval)
    return out


def evaluate_t2a(task, clips: dict[str, ClipSet], report: T2AReport, *, data_seed: int = 0,
                 cache_dir: str | None = None) -> T2AResult:
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
        generated = generate_clips(task, real.captions, real.seconds, report, scale, rescale, desc)
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
    return T2AResult(metrics, generated, list(real.captions), real.sample_rate)


def _by_kind(correct: np.ndarray, first_kind: np.ndarray) -> dict[str, float]:
    """Mean of ``correct`` over the clips of each kind (by the caption's first event)."""
    return {kind: float(correct[first_kind == kind].mean()) for kind in KINDS if (first_kind == kind).any()}


def reconstruct(vae, waveforms: list[np.ndarray]) -> list[np.ndarray]:
    """Clips ``(T_i,)`` encoded and decoded by the audio VAE, cut back to their lengths."""
    decoded = decode_latents(vae, encode_clips(vae, waveforms))
    return [clip[: len(wave)] for clip, wave in zip(decoded, waveforms)]


def write_report(out_dir: str | Path, result: T2AResult, num_written: int = 8) -> Path:
    """metrics.json, then wav + spectrogram PNG for the first clip of each kind (up to ``num_written``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    picks = _spread(len(result.captions), num_written)
    write_clips(out, [result.generated[i] for i in picks], [result.captions[i] for i in picks], result.sample_rate)
    return out


def _spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``total`` (the clips are ordered kind by kind)."""
    if total == 0 or count <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, total - 1, min(count, total))})


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
