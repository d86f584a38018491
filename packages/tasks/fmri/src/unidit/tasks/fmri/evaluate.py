"""Decoding captions from predicted features, and the metric table of ``unidit fit|eval fmri``.

For the shared test images, each condition is a ``(N, S·Dc)`` feature matrix
decoded into one caption per image by the caption model
(``CaptionTask.captions_from_context``) and scored against the images' captions
with the caption task's metrics (BLEU-1/4, ROUGE-L, CIDEr-D, METEOR with Java;
attribute accuracy on the embedded scenes; :mod:`unidit.tasks.caption.metrics`).
Retrieval: each image's predicted features are compared (cosine) with the
true features of every test image; top-k is the fraction of images whose own
features rank within the first k (chance: k / N). Feature r is the Pearson
correlation of predicted and true features across test images, averaged over
features. The conditions (Brain Captioning's framing, after UniBrain / BrainCap):

* **ceiling**: the true image features (the captioner on the pictures themselves);
* **decoded**: features predicted from each subject's fMRI by each mapper;
* **floor**: features predicted from shuffled fMRI (every test image gets another
  test image's response pattern: a derangement), by each subject's first mapper.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from unidit.tasks.caption.data import CaptionSet
from unidit.tasks.caption.evaluate import captioned_grid, shown
from unidit.tasks.caption.metrics import attribute_accuracy, caption_scores
from unidit.tasks.fmri.features import as_context, context_shape
from unidit.training.report import Evaluation, sample_names, spread_indices
from unidit.training.sampling import ReportOptions, generate_in_batches

CEILING, FLOOR = "ceiling: true image features", "floor: shuffled fMRI"
COLUMNS = ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr-D", "METEOR", "attribute_accuracy", "top-1", "top-5", "feature_r")


@dataclass
class FmriReport(ReportOptions):
    """What ``unidit fit/eval fmri`` decodes and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` and

    Attributes:
        max_images: shared test images decoded (the first ones); None = all of them.
        shuffle_seed: seed of the derangement of the floor.
        java: score as COCO does when ``java`` is on PATH (PTB tokenizer, METEOR); False = the Python
            tokenizer and no METEOR (each Java scoring starts two JVMs, ~10 s a condition on 2 busy cores).
    """

    steps: int = 20
    batch_size: int = 50
    max_images: Optional[int] = None
    shuffle_seed: int = 0
    java: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_images is not None and (isinstance(self.max_images, bool) or self.max_images < 2):
            raise ValueError(f"max_images: expected an integer >= 2 or none (all test images), got {self.max_images!r}")


def derangement(count: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(count)`` with no fixed point (``count >= 2``)."""
    if count < 2:
        raise ValueError(f"a shuffled floor needs at least 2 test images, got {count}")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(count)
        if not (order == np.arange(count)).any():
            return order


def retrieval(predicted: np.ndarray, true: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k image identification by cosine similarity of predicted ``(N, F)`` to true ``(N, F)`` features."""
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape}: expected two (N, F) arrays")
    p = predicted / np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-8)
    t = true / np.maximum(np.linalg.norm(true, axis=1, keepdims=True), 1e-8)
    similarity = p @ t.T  # (N, N): row i = prediction i against every image
    rank = (similarity > np.diag(similarity)[:, None]).sum(1)  # images scoring above the right one
    return {f"top-{k}": float((rank < k).mean()) for k in ks}


def feature_correlation(predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean over features of the Pearson r across images (features constant over the images are skipped)."""
    p, t = predicted - predicted.mean(0), true - true.mean(0)
    norm = np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0)
    keep = norm > 1e-8
    return float(((p * t).sum(0)[keep] / norm[keep]).mean()) if keep.any() else 0.0


def decode_captions(task, features: np.ndarray, options: ReportOptions, batch_size: int) -> list[str]:
    """One caption per row of ``(N, S·Dc)`` features, ``batch_size`` at a time (batch k uses seed + k)."""
    context = as_context(features, context_shape(task))  # (N, S, Dc)
    batches = generate_in_batches(lambda part, opts: task.captions_from_context(context[part], opts.sampling()),
                                  len(context), options, batch_size, desc="decoding")
    return [text for batch in batches for text in batch]


def score_condition(task, features: np.ndarray, true: np.ndarray, stimuli: CaptionSet,
                    report: FmriReport) -> tuple[dict, list[str]]:
    """Captions of one condition's features, their caption metrics, retrieval and feature r."""
    captions = decode_captions(task, features, report, report.batch_size)
    predictions = {k: [text] for k, text in zip(stimuli.image_ids, captions)}
    scores = caption_scores(predictions, stimuli.references(), use_java=None if report.java else False)
    if stimuli.objects:
        scores.update(attribute_accuracy(predictions, dict(zip(stimuli.image_ids, stimuli.objects))))
    scores.update(retrieval(features, true))
    scores["feature_r"] = feature_correlation(features, true)
    return scores, captions


def evaluate_decoding(task, true: np.ndarray, decoded: dict[str, np.ndarray], floors: dict[str, np.ndarray],
                      stimuli: CaptionSet, report: FmriReport, extra: dict | None = None) -> Evaluation:
    """Score the ceiling, every decoded condition and every floor on the same test images.

    ``true`` is ``(N, S·Dc)``; ``decoded`` and ``floors`` map a name (``subj01 ridge``) to ``(N, S·Dc)``.
    """
    count = len(stimuli) if report.max_images is None else min(report.max_images, len(stimuli))
    stimuli = stimuli.subset(range(count))
    conditions = {CEILING: true[:count], **{k: v[:count] for k, v in decoded.items()},
                  **{f"{FLOOR} ({k})": v[:count] for k, v in floors.items()}}
    results, captions = {}, {}
    for name, features in conditions.items():
        results[name], captions[name] = score_condition(task, features, true[:count], stimuli, report)
    chance = {"top-1": 1 / count, "top-5": min(5, count) / count}
    metrics = {"conditions": results, "num_images": count, "chance": chance,
               "gaps": gaps(results), "report": asdict(report), **(extra or {})}
    examples = [{"image_id": int(k), "references": refs, **{name: captions[name][i] for name in captions}}
                for i, (k, refs) in enumerate(zip(stimuli.image_ids, stimuli.captions))]
    chosen = spread_indices(count, report.num_written)
    pictures = stimuli.subset(chosen).images() if chosen else None
    first = next(iter(decoded), CEILING)
    return Evaluation(metrics, format_table(metrics),
                      lambda out: write_examples(out, pictures, [examples[i] for i in chosen], first),
                      summary="captions.json (every condition per image) and samples.png")


def gaps(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per decoded condition: CIDEr-D and top-1 below the ceiling and above the mean floor."""
    floors = [v for k, v in results.items() if k.startswith(FLOOR)]
    ceiling = results[CEILING]
    out = {}
    for name, scores in results.items():
        if name == CEILING or name.startswith(FLOOR):
            continue
        out[name] = {f"{metric}_below_ceiling": ceiling[metric] - scores[metric] for metric in ("CIDEr-D", "top-1")}
        if floors:
            out[name].update({f"{metric}_above_floor": scores[metric] - float(np.mean([f[metric] for f in floors]))
                              for metric in ("CIDEr-D", "top-1")})
    return out


def format_table(metrics: dict) -> str:
    """One row per condition, one column per metric; the retrieval chance level below."""
    results = metrics["conditions"]
    columns = [c for c in COLUMNS if any(c in r for r in results.values())]
    width = max(len(name) for name in results) + 6
    lines = [f"{metrics['num_images']} shared test images, captions tokenised by "
             f"{next(iter(results.values()))['tokenizer']}",
             f"{'condition':<{width}}" + "".join(f"{c.replace('attribute_accuracy', 'attributes'):>11}"
                                                 for c in columns)]
    rows = {**results, **{f"mean {kind}": v for kind, v in metrics.get("mean_over_subjects", {}).items()}}
    for name, scores in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]:11.4f}" if c in scores else f"{'-':>11}"
                                                  for c in columns))
    chance = metrics["chance"]
    lines.append(f"retrieval chance: top-1 {chance['top-1']:.4f}, top-5 {chance['top-5']:.4f}")
    return "\n".join(lines)


def write_examples(out: str | Path, pictures: np.ndarray | None, examples: list[dict], shown_condition: str) -> None:
    """``captions.json`` (references and every condition's caption), the pictures and ``samples.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = sample_names([e.get(shown_condition) or "empty" for e in examples])
    for k, (name, example) in enumerate(zip(names, examples)):
        if pictures is not None:
            shown(pictures[k]).save(out / f"{name}.png")
            example["file"] = f"{name}.png"
    (out / "captions.json").write_text(json.dumps(examples, indent=2))
    if examples and pictures is not None:
        captioned_grid(pictures, [e.get(shown_condition, "") for e in examples]).save(out / "samples.png")
