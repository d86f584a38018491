"""The 3D task's metric table (PointFlow §5, DiT-3D §4) and its sample files.

Generated clouds come from the captions of a kind-balanced subset of the
held-out test split and are compared with the real clouds of that subset:

- 1-NNA and COV (and MMD) with Chamfer distance and EMD, per shape kind and
  averaged over kinds (1-NNA: 50% is ideal, 100% means generated and real
  clouds are told apart perfectly);
- prompt faithfulness: a PointNet classifier trained on the training split
  predicts the kind of each generated cloud; its accuracy on the real test
  clouds of the same subset is reported beside it as the ceiling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from unidit.tasks.shape3d.classifier import accuracy, load_or_train_classifier
from unidit.tasks.shape3d.data import ShapeSet
from unidit.tasks.shape3d.media import render_clouds_png, write_clouds_ply
from unidit.tasks.shape3d.metrics import evaluate_clouds
from unidit.training.report import Evaluation, sample_names
from unidit.training.sampling import ReportOptions, generate_in_batches


@dataclass
class Shape3DReport(ReportOptions):
    """What ``unidit fit/eval shape3d`` generates and measures: the sampling options of
    :class:`~unidit.training.sampling.ReportOptions` (steps, sampler, guidance, seed, batch size, ...) and

    Attributes:
        per_kind: test clouds per shape kind that are generated and compared.
        emd_points: points per cloud for exact EMD (assignment is cubic in points).
    """

    cfg_scale: float = 2.0
    cfg_rescale: float = 0.7
    batch_size: int = 40
    per_kind: int = 20
    emd_points: int = 256


def balanced_indices(labels: np.ndarray, per_kind: int) -> np.ndarray:
    """The first ``per_kind`` indices of every label, label by label."""
    chosen = [np.flatnonzero(labels == k)[:per_kind] for k in np.unique(labels)]
    return np.concatenate(chosen)


def generate_clouds(task, captions: list[str], report: Shape3DReport, num_points: int) -> torch.Tensor:
    """(len(captions), num_points, 3) clouds, generated ``report.batch_size`` at a time."""
    batches = generate_in_batches(
        lambda part, options: task.sample_clouds(captions[part], num_points, options=options).cpu(),
        len(captions), report, report.batch_size,
    )
    return torch.cat(batches)


def evaluate_shapes(task, splits: dict[str, ShapeSet], report: Shape3DReport, cache_dir: str | None = None
                    ) -> Evaluation:
    """Generate from test captions and measure (see the module docstring)."""
    test, train = splits["test"], splits["train"]
    index = balanced_indices(test.labels, report.per_kind)
    captions = [test.captions[i] for i in index]
    real = torch.from_numpy(test.points[index])  # (G, N, 3)
    labels = test.labels[index]
    generated = generate_clouds(task, captions, report, real.shape[1])  # (G, N, 3)

    classifier = load_or_train_classifier(train, cache_dir=cache_dir)
    acc_generated = accuracy(classifier, generated.numpy(), labels)
    acc_real = accuracy(classifier, real.numpy(), labels)

    per_kind = {}
    for k in np.unique(labels):
        where = labels == k
        per_kind[test.label_names[k]] = evaluate_clouds(
            generated[where].numpy(), real[where].numpy(), emd_points=report.emd_points, progress=False
        )
    metric_names = next(iter(per_kind.values())).keys()
    means = {name: float(np.mean([m[name] for m in per_kind.values()])) for name in metric_names}
    metrics = {
        "classifier_accuracy_generated": acc_generated,
        "classifier_accuracy_real": acc_real,
        "faithfulness_ratio": acc_generated / max(acc_real, 1e-8),
        **{f"{name}_mean_over_kinds": value for name, value in means.items()},
        "per_kind": per_kind,
        "num_generated": int(len(captions)),
        "report": asdict(report),
    }
    # each generated cloud is written in the units of the real test cloud whose caption it was made from
    in_data_units = test.frames.subset(index).from_frame(generated.numpy())  # (G, N, 3)
    return Evaluation(metrics, format_table(metrics),
                      lambda out: write_report_samples(out, in_data_units, captions, labels, report.num_written),
                      summary=".ply samples and samples.png")


def write_report_samples(out: str | Path, generated: np.ndarray, captions: list[str], labels, num_written: int = 8
                         ) -> None:
    """A .ply and a .png per written prompt (one cloud per kind first) and samples.png."""
    picks = _one_per_kind(labels, num_written)
    chosen = [captions[i] for i in picks]
    write_samples(out, [np.asarray(generated[i], dtype=np.float32) for i in picks], chosen, sample_names(chosen))


def write_samples(out: str | Path, clouds: list, captions: list[str], names: list[str]) -> None:
    """One ``.ply`` and one ``.png`` render per cloud, plus ``samples.png`` with all of them."""
    out = Path(out)
    write_clouds_ply(out, clouds, names)
    for cloud, caption, name in zip(clouds, captions, names):
        render_clouds_png([cloud], [caption], out / f"{name}.png", cols=1)
    render_clouds_png(clouds, captions, out / "samples.png")


def format_table(metrics: dict) -> str:
    """A plain-text metric table for the terminal."""
    lines = [
        f"classifier accuracy  generated {metrics['classifier_accuracy_generated']:.3f}  "
        f"real (ceiling) {metrics['classifier_accuracy_real']:.3f}  ratio {metrics['faithfulness_ratio']:.3f}",
        "",
    ]
    per_kind = metrics["per_kind"]
    names = list(next(iter(per_kind.values())).keys())
    lines.append("kind".ljust(12) + "".join(n.rjust(12) for n in names))
    for kind, row in per_kind.items():
        lines.append(kind.ljust(12) + "".join(f"{row[n]:12.4f}" for n in names))
    lines.append("mean".ljust(12) + "".join(f"{metrics[f'{n}_mean_over_kinds']:12.4f}" for n in names))
    return "\n".join(lines)


def _one_per_kind(labels, count: int) -> list[int]:
    labels = np.asarray(labels)
    order = []
    for rank in range(len(labels)):
        for k in np.unique(labels):
            hits = np.flatnonzero(labels == k)
            if rank < len(hits):
                order.append(int(hits[rank]))
            if len(order) == count:
                return order
    return order
