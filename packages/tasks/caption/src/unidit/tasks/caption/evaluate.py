"""The captioner's metric table and its example files (what ``unidit fit|eval caption`` report).

One caption is generated per held-out test picture and scored against that
picture's reference captions with the COCO caption metrics (BLEU-1..4,
Papineni et al. 2002; ROUGE-L, Lin 2004; CIDEr-D, Vedantam et al. 2015; see
:mod:`unidit.tasks.caption.metrics`). On the embedded scenes, whose true objects
are known, the attribute accuracy of the generated captions (shapes, colours,
sizes and relations that are really in the picture) is reported too. Beside each
number stands a reference ceiling: each picture's first reference caption scored
against its other references (n-gram metrics) or against the scene (attributes),
which is what a perfect captioner of this data would reach.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw
from unidit.tasks.caption.data import CaptionSet
from unidit.tasks.caption.image_encoder import images_to_tensor
from unidit.tasks.caption.metrics import attribute_accuracy, caption_scores
from unidit.training.report import Evaluation, sample_names, spread_indices
from unidit.training.sampling import ReportOptions, generate_in_batches

SHOWN_SIDE = 192  # pixels of a written picture (the 64×64 inputs upscaled, nearest neighbour)
SCORE_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D", "METEOR")
ATTRIBUTE_NAMES = ("shape_accuracy", "colour_accuracy", "size_accuracy", "relation_accuracy",
                   "attribute_accuracy", "object_recall")


@dataclass
class CaptionReport(ReportOptions):
    """What ``unidit fit/eval caption`` generates and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` (steps, sampler, guidance, seed, batch size, ...) and

    Attributes:
        max_images: test pictures captioned (the first ones of the split); None = all of them.
        refine_fraction: Back&Refine (:mod:`unidit.tasks.caption.refine`): the share of least
            confident positions generated again after sampling; 0 = off.
        refine_rounds: how many times Back&Refine runs (when ``refine_fraction > 0``).
        java: score as COCO does when ``java`` is on PATH (PTB tokenizer, METEOR); False = the Python
            tokenizer and no METEOR (the METEOR scorer starts a JVM, ~9 s on 2 cores, twice a report).
    """

    steps: int = 20
    batch_size: int = 50
    max_images: Optional[int] = None
    refine_fraction: float = 0.0
    refine_rounds: int = 1
    java: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.refine_fraction < 1.0 or self.refine_rounds < 1:
            raise ValueError(f"refine_fraction {self.refine_fraction}, refine_rounds {self.refine_rounds}: expected "
                             "a fraction in [0, 1) and at least one round")
        if self.max_images is not None and (isinstance(self.max_images, bool) or self.max_images < 1):
            raise ValueError(f"max_images: expected an integer >= 1 or none (all test pictures), got {self.max_images!r}")


def generate_captions(task, pictures: torch.Tensor, options: ReportOptions, batch_size: int) -> list[str]:
    """One caption per ``(N, 3, H, W)`` picture, ``batch_size`` pictures at a time (batch k uses seed + k).

    ``options`` with a ``refine_fraction > 0`` (a :class:`CaptionReport`) turn Back&Refine on.
    """
    refine = getattr(options, "refine_fraction", 0.0)
    extra = {"refine_fraction": refine, "refine_rounds": options.refine_rounds} if refine > 0 else {}
    batches = generate_in_batches(lambda part, opts: task.sample_captions(pictures[part], opts.sampling(), **extra),
                                  len(pictures), options, batch_size, desc="captioning")
    return [text for batch in batches for text in batch]


def reference_ceiling(test: CaptionSet, use_java: bool | None = None) -> dict[str, float]:
    """Scores of each picture's first reference against its other references (and the scene's objects).

    ``use_java``: as :func:`~unidit.tasks.caption.metrics.caption_scores` (None = when ``java`` is on PATH).
    """
    several = [i for i, texts in enumerate(test.captions) if len(texts) > 1]
    if not several:
        return {}
    ids = [test.image_ids[i] for i in several]
    first = {k: [test.captions[i][0]] for k, i in zip(ids, several)}
    scores = caption_scores(first, {k: test.captions[i][1:] for k, i in zip(ids, several)}, use_java)
    if test.objects:
        scores.update(attribute_accuracy(first, {k: test.objects[i] for k, i in zip(ids, several)}))
    return scores


def evaluate_captions(task, test: CaptionSet, report: CaptionReport, image_size: int) -> Evaluation:
    """Caption the test pictures and measure them (see the module docstring)."""
    count = len(test) if report.max_images is None else min(report.max_images, len(test))
    subset = test.subset(range(count))
    pictures = np.asarray(subset.images(image_size))  # (N, S, S, 3) uint8
    generated = generate_captions(task, images_to_tensor(pictures), report, report.batch_size)
    predictions = {k: [text] for k, text in zip(subset.image_ids, generated)}
    use_java = None if report.java else False
    metrics: dict = {"generated": caption_scores(predictions, subset.references(), use_java)}
    if subset.objects:
        metrics["generated"].update(attribute_accuracy(predictions, dict(zip(subset.image_ids, subset.objects))))
    metrics["reference_ceiling"] = reference_ceiling(subset, use_java)
    metrics.update(num_images=count, report=asdict(report))
    examples = [{"image_id": int(k), "generated": text, "references": refs}
                for k, text, refs in zip(subset.image_ids, generated, subset.captions)]
    chosen = spread_indices(count, report.num_written)
    return Evaluation(metrics, format_table(metrics),
                      lambda out: write_examples(out, pictures[chosen], [examples[i] for i in chosen]),
                      summary="example pictures (.png), captions.json and samples.png")


def format_table(metrics: dict) -> str:
    """A plain-text table: one row per metric, generated captions beside the reference ceiling."""
    generated, ceiling = metrics["generated"], metrics.get("reference_ceiling") or {}
    lines = [f"{metrics['num_images']} test pictures, captions tokenised by {generated['tokenizer']}",
             f"{'metric':<20}{'generated':>12}{'reference':>12}"]
    for name in (*SCORE_NAMES, *ATTRIBUTE_NAMES):
        if name in generated:
            reference = f"{ceiling[name]:12.4f}" if name in ceiling else f"{'-':>12}"
            lines.append(f"{name:<20}{generated[name]:12.4f}{reference}")
    return "\n".join(lines)


def write_examples(out: str | Path, pictures: np.ndarray, examples: list[dict]) -> None:
    """``<NN_caption>.png`` per example picture, ``captions.json`` (generated + references) and ``samples.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = sample_names([e["generated"] or "empty" for e in examples])
    for picture, name, example in zip(pictures, names, examples):
        shown(picture).save(out / f"{name}.png")
        example["file"] = f"{name}.png"
    (out / "captions.json").write_text(json.dumps(examples, indent=2))
    if examples:
        captioned_grid(pictures, [e["generated"] for e in examples]).save(out / "samples.png")


def shown(picture: np.ndarray) -> Image.Image:
    """An ``(H, W, 3)`` uint8 picture upscaled to :data:`SHOWN_SIDE` pixels (nearest neighbour, edges kept sharp)."""
    return Image.fromarray(picture).resize((SHOWN_SIDE, SHOWN_SIDE), Image.Resampling.NEAREST)


def captioned_grid(pictures: np.ndarray, captions: list[str], cols: int = 4) -> Image.Image:
    """The pictures in a grid, each with its caption written below it (wrapped to the picture's width)."""
    rows, line_height, lines_per_caption = -(-len(captions) // cols), 12, 4
    cell_w, cell_h = SHOWN_SIDE + 8, SHOWN_SIDE + 8 + line_height * lines_per_caption
    sheet = Image.new("RGB", (cell_w * min(cols, len(captions)), cell_h * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (picture, caption) in enumerate(zip(pictures, captions)):
        x, y = (index % cols) * cell_w + 4, (index // cols) * cell_h + 4
        sheet.paste(shown(picture), (x, y))
        for k, line in enumerate(_wrap(caption, SHOWN_SIDE // 6)[:lines_per_caption]):
            draw.text((x, y + SHOWN_SIDE + 2 + k * line_height), line, fill="black")
    return sheet


def _wrap(text: str, width: int) -> list[str]:
    """Words of ``text`` in lines of at most ``width`` characters (a longer word gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]
