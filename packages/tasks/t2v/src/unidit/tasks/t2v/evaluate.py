"""The t2v metric table and its sample files.

Clips are generated from the captions of the first ``num_clips`` test clips
(the test split cycles through shape x motion, then colour, so the first 160
cover every combination once) and compared with those real clips:

- **prompt faithfulness**: the attribute classifier (``classifier.py``,
  trained on the real training split) predicts shape, colour and motion of the
  primary object; its accuracy on the generated clips is reported beside its
  accuracy on the real clips (the ceiling) and on the real clips passed
  through the VAE (what a perfect latent generator could reach), with the
  ratio generated / real per attribute;
- **Fréchet distance** between generated and real clips in the classifier's
  embedding space (FVD's recipe with a task-specific network, Unterthiner et
  al. 2019), beside the same distance between the real test clips and as
  many real training clips (the floor two real samples reach);
- **temporal consistency**: the mean absolute difference between
  consecutive frames, in [0, 1] pixel units, for generated and real clips, and
  their ratio.  A generator without temporal coherence flickers (ratio well
  above 1); one that ignores motion produces near-still clips (ratio well
  below 1); real motion keeps it near 1.  It needs no optical-flow model and
  reads directly in pixels.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from unidit.tasks.t2v.classifier import ATTRIBUTES, attribute_accuracy, classify, load_or_train_classifier
from unidit.tasks.t2v.data import VideoSet
from unidit.tasks.t2v.datamodule import encode_clips
from unidit.tasks.t2v.media import write_clips
from unidit.training.frechet import frechet_distance
from unidit.training.report import Evaluation, sample_names, spread_indices
from unidit.training.sampling import ReportOptions, generate_in_batches


@dataclass
class T2VReport(ReportOptions):
    """What ``unidit fit/eval t2v`` generates and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` (steps, sampler, guidance, seed, batch size, ...) and

    Attributes:
        num_clips: test captions generated from (and real test clips compared with).
        fps: frame rate of the written mp4 files.
        classifier_epochs: epochs of the attribute classifier (trained once per training set, cached).
    """

    cfg_scale: float = 3.0
    cfg_rescale: float = 0.7
    num_clips: int = 160
    fps: float = 8.0
    classifier_epochs: int = 4


def temporal_difference(clips: np.ndarray) -> float:
    """Mean |frame[f+1] - frame[f]| over clips, frames, pixels and channels, in [0, 1] units."""
    clips = np.asarray(clips, dtype=np.float32) / 255.0  # (M, F, H, W, 3)
    return float(np.abs(np.diff(clips, axis=1)).mean())


def generate_clips(task, captions: list[str], report: T2VReport, num_frames: int) -> np.ndarray:
    """uint8 clips ``(len(captions), F, H, W, 3)``, generated ``report.batch_size`` at a time."""
    batches = generate_in_batches(
        lambda part, options: task.sample_videos(captions[part], num_frames=num_frames, options=options),
        len(captions), report, report.batch_size,
    )
    return np.concatenate(batches)


def evaluate_videos(task, splits: dict[str, VideoSet], report: T2VReport, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> Evaluation:
    """Generate from test captions and measure (see the module docstring)."""
    test, train = splits["test"], splits["train"]
    count = min(report.num_clips, len(test))
    if count < 2:
        raise ValueError(f"need at least 2 test clips to measure, got {len(test)}")
    real = test.videos[:count]  # (G, F, H, W, 3)
    captions = test.captions[:count]
    generated = generate_clips(task, captions, report, real.shape[1])
    metrics: dict = {
        "num_clips": count,
        "temporal_difference_generated": temporal_difference(generated),
        "temporal_difference_real": temporal_difference(real),
    }
    metrics["temporal_difference_ratio"] = (
        metrics["temporal_difference_generated"] / max(metrics["temporal_difference_real"], 1e-8)
    )
    if test.specs and train.specs:  # attribute labels exist for the embedded data only
        metrics.update(_classifier_metrics(task, train, real, generated, test.labels()[:count], report, seed,
                                           cache_dir))
    metrics["report"] = asdict(report)
    return Evaluation(metrics, format_table(metrics),
                      lambda out: write_samples(out, generated, captions, report.num_written, report.fps),
                      summary=".mp4 samples, frame strips and samples.png")


def _classifier_metrics(task, train: VideoSet, real, generated, labels, report: T2VReport, seed: int,
                        cache_dir) -> dict:
    classifier = load_or_train_classifier(train.videos, train.labels(), seed=seed, cache_dir=cache_dir,
                                          epochs=report.classifier_epochs)
    reconstructed = task.decode_latents(torch.from_numpy(encode_clips(task.vae, real, report.batch_size)))
    predicted, embedded = {}, {}
    for name, clips in (("generated", generated), ("real", real), ("reconstructed", reconstructed),
                        ("train", train.videos[: len(real)])):
        predicted[name], embedded[name] = classify(classifier, clips)
    accuracy = {name: attribute_accuracy(predicted[name], labels) for name in ("generated", "real", "reconstructed")}
    metrics = {f"accuracy_{name}": values for name, values in accuracy.items()}
    metrics["accuracy_ratio"] = {
        attribute: accuracy["generated"][attribute] / max(accuracy["real"][attribute], 1e-8) for attribute in ATTRIBUTES
    }
    metrics["frechet_distance"] = frechet_distance(embedded["generated"], embedded["real"])
    metrics["frechet_distance_real_train"] = frechet_distance(embedded["train"], embedded["real"])
    return metrics


def format_table(metrics: dict) -> str:
    """A plain-text metric table for the terminal."""
    lines = []
    if "accuracy_generated" in metrics:
        lines.append("attribute   generated  real (ceiling)  VAE recon.  ratio gen/real")
        for attribute in ATTRIBUTES:
            lines.append(
                f"{attribute:<10}{metrics['accuracy_generated'][attribute]:>11.3f}"
                f"{metrics['accuracy_real'][attribute]:>16.3f}{metrics['accuracy_reconstructed'][attribute]:>12.3f}"
                f"{metrics['accuracy_ratio'][attribute]:>16.3f}"
            )
        lines.append(
            f"Fréchet distance (classifier embedding)  generated vs real {metrics['frechet_distance']:.3f}  "
            f"real train vs real test {metrics['frechet_distance_real_train']:.3f}"
        )
    lines.append(
        f"temporal difference |x[f+1]-x[f]|  generated {metrics['temporal_difference_generated']:.4f}  "
        f"real {metrics['temporal_difference_real']:.4f}  ratio {metrics['temporal_difference_ratio']:.3f}"
    )
    lines.append(f"({metrics['num_clips']} test captions)")
    return "\n".join(lines)


def write_samples(out_dir: str | os.PathLike, generated: np.ndarray, captions: list[str], num_written: int = 8,
                  fps: float = 8.0) -> Path:
    """An .mp4 and a frame-strip .png per written sample (spread over the test captions) and samples.png."""
    picks = spread_indices(len(captions), num_written)
    chosen = [captions[i] for i in picks]
    write_clips(out_dir, [generated[i] for i in picks], chosen, sample_names(chosen), fps=fps)
    return Path(out_dir)
