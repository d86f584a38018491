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

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from unidit.tasks.t2v.classifier import ATTRIBUTES, attribute_accuracy, classify, load_or_train_classifier
from unidit.tasks.t2v.data import VideoSet
from unidit.tasks.t2v.datamodule import encode_clips
from unidit.tasks.t2v.media import write_clips
from unidit.training.frechet import frechet_distance


@dataclass
class T2VReport:
    """What ``unidit fit/eval t2v`` generates and measures.

    Attributes:
        num_clips: test captions generated from (and real test clips compared with).
        steps: ODE steps of the sampler.
        sampler: euler, heun or midpoint.
        cfg_scale: classifier-free guidance scale (1 = no guidance).
        cfg_rescale: guidance rescale phi (EzAudio / Lin et al. 2024); 0 = plain CFG.
        shift: sampling time shift (SD3 §5.3.2); None = the training shift.
        cache_interval: FORA-style step caching: recompute the blocks on one call in this many (1 = exact).
        cache_warmup: network calls always computed before caching starts.
        batch_size: clips generated per batch.
        num_written: samples written as .mp4 + frame strip .png.
        fps: frame rate of the written mp4 files.
        classifier_epochs: epochs of the attribute classifier (trained once per training set, cached).
        seed: noise seed.
    """

    num_clips: int = 160
    steps: int = 30
    sampler: str = "euler"
    cfg_scale: float = 3.0
    cfg_rescale: float = 0.7
    shift: float | None = None
    cache_interval: int = 1
    cache_warmup: int = 2
    batch_size: int = 32
    num_written: int = 8
    fps: float = 8.0
    classifier_epochs: int = 4
    seed: int = 0


def temporal_difference(clips: np.ndarray) -> float:
    """Mean |frame[f+1] - frame[f]| over clips, frames, pixels and channels, in [0, 1] units."""
    clips = np.asarray(clips, dtype=np.float32) / 255.0  # (M, F, H, W, 3)
    return float(np.abs(np.diff(clips, axis=1)).mean())


def generate_in_batches(task, captions: list[str], report: T2VReport, num_frames: int) -> np.ndarray:
    """uint8 clips ``(len(captions), F, H, W, 3)``, generated ``report.batch_size`` at a time."""
    clips = []
    starts = range(0, len(captions), report.batch_size)
    for batch_number, start in enumerate(tqdm(starts, desc="sampling", unit="batch")):
        clips.append(task.sample_videos(
            captions[start : start + report.batch_size], num_frames=num_frames, steps=report.steps,
            sampler=report.sampler, cfg_scale=report.cfg_scale, cfg_rescale=report.cfg_rescale, shift=report.shift,
            cache_interval=report.cache_interval, cache_warmup=report.cache_warmup, seed=report.seed + batch_number,
        ))
    return np.concatenate(clips)


def evaluate_videos(task, splits: dict[str, VideoSet], report: T2VReport, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> tuple[dict, np.ndarray, list[str]]:
    """Generate from test captions and measure; returns (metrics, generated clips, their captions)."""
    test, train = splits["test"], splits["train"]
    count = min(report.num_clips, len(test))
    if count < 2:
        raise ValueError(f"need at least 2 test clips to measure, got {len(test)}")
    real = test.videos[:count]  # (G, F, H, W, 3)
    captions = test.captions[:count]
    generated = generate_in_batches(task, captions, report, real.shape[1])
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
    return metrics, generated, captions


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


def write_report(out_dir: str | os.PathLike, metrics: dict, generated: np.ndarray, captions: list[str],
                 num_written: int = 8, fps: float = 8.0) -> Path:
    """metrics.json, an .mp4 and a frame-strip .png per written sample, and samples.png with all strips."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, out / "metrics.json")
    picks = _spread(len(captions), num_written)
    names = [f"{n:02d}_{slug(captions[i])}" for n, i in enumerate(picks)]
    write_clips(out, [generated[i] for i in picks], [captions[i] for i in picks], names, fps=fps)
    return out


def _spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (the test split cycles through attributes)."""
    wanted = max(0, min(wanted, count))
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted)}) if wanted else []


def slug(text: str) -> str:
    """A file-name-safe, lower-case version of a caption (at most 60 characters)."""
    keep = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(part for part in keep.split("_") if part)[:60]
