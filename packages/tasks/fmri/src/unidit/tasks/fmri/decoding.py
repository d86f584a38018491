"""Brain captioning end to end: fit the mappers on a data set's training images, measure on the shared test set."""

from __future__ import annotations

import numpy as np
from unidit.tasks.fmri.data import shared_test
from unidit.tasks.fmri.decoder import BrainDecoder, MappingOptions
from unidit.tasks.fmri.evaluate import FmriReport, derangement, evaluate_decoding, format_table
from unidit.tasks.fmri.features import image_features
from unidit.tasks.fmri.responses import FmriSet
from unidit.training.report import Evaluation


class FeatureTable:
    """The captioner's features of a data set's stimuli, computed once per stimulus id."""

    def __init__(self, task, dataset: FmriSet) -> None:
        self.task, self.dataset, self.rows = task, dataset, {}
        self.values = np.zeros((0, 0), dtype=np.float32)

    def __call__(self, image_ids) -> np.ndarray:  # (N,) ids -> (N, S·Dc)
        ids = [int(i) for i in image_ids]
        missing = sorted({i for i in ids if i not in self.rows})
        if missing:
            fresh = image_features(self.task, self.dataset.stimuli_of(missing))  # (M, S·Dc)
            start = len(self.rows)
            self.values = fresh if not self.rows else np.concatenate([self.values, fresh])
            self.rows.update({i: start + k for k, i in enumerate(missing)})
        return self.values[[self.rows[i] for i in ids]]


def fit_decoder(task, dataset: FmriSet, options: MappingOptions, features: FeatureTable | None = None) -> BrainDecoder:
    """Every mapper of ``options`` on each subject's own (non-shared) images."""
    features = features or FeatureTable(task, dataset)
    train = {s: r.train() for s, r in dataset.subjects.items()}
    empty = [s for s, r in train.items() if len(r) < 3]
    if empty:
        raise ValueError(f"subject(s) {empty}: fewer than 3 training images outside the shared test set")
    return BrainDecoder(options).fit(train, features)


def measure(task, decoder: BrainDecoder, dataset: FmriSet, report: FmriReport,
            features: FeatureTable | None = None, extra: dict | None = None) -> Evaluation:
    """Ceiling, every (subject, mapper) and each subject's shuffled-fMRI floor on the shared test images."""
    features = features or FeatureTable(task, dataset)
    ids, tests = shared_test(dataset)
    count = len(ids) if report.max_images is None else min(report.max_images, len(ids))
    ids = ids[:count]
    true = features(ids)  # (N, S·Dc)
    decoded, floors = {}, {}
    shuffle = derangement(count, report.shuffle_seed)
    for subject, responses in tests.items():
        voxels = responses.voxels[:count]  # (N, V), rows in the order of ids
        for kind in decoder.kinds:
            decoded[f"{subject} {kind}"] = decoder.predict(kind, subject, voxels)
        floors[f"{subject} {decoder.kinds[0]}"] = decoder.predict(decoder.kinds[0], subject, voxels[shuffle])
    info = {"subjects": {s: {"voxels": r.num_voxels, "train_images": int((~r.shared).sum()),
                             "test_images": int(r.shared.sum())} for s, r in dataset.subjects.items()},
            "ridge_alpha": decoder.alphas(), "fit_seconds": decoder.seconds, **(extra or {})}
    evaluation = evaluate_decoding(task, true, decoded, floors, dataset.stimuli_of(ids), report, info)
    evaluation.metrics["mean_over_subjects"] = mean_over_subjects(evaluation.metrics["conditions"], decoder.kinds,
                                                                  list(tests))
    evaluation.table = format_table(evaluation.metrics)
    return evaluation


def mean_over_subjects(results: dict, kinds: list[str], subjects: list[str]) -> dict[str, dict[str, float]]:
    """Each mapper's metrics averaged over the subjects (cross-subject against single-subject at a glance)."""
    out = {}
    for kind in kinds:
        rows = [results[f"{s} {kind}"] for s in subjects]
        out[kind] = {k: float(np.mean([r[k] for r in rows])) for k, v in rows[0].items() if isinstance(v, float)}
    return out
