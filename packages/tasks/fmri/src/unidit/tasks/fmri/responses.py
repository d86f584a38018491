"""Trial-averaged voxel responses of one subject, split into the shared test images and the rest.

NSD (Allen et al. 2022) shows each image up to three times; decoding work
(Brain-Diffuser, MindEye, UMBRAE) averages the repeats of an image into one
pattern, trains on each subject's own images and tests on the shared images
every subject saw (the "shared-1000"). :func:`average_repeats` does the
averaging; :class:`SubjectResponses` holds the result for one subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from unidit.tasks.caption.data import CaptionSet


@dataclass
class SubjectResponses:
    """One subject's trial-averaged responses.

    Attributes:
        subject: the subject's name (``subj01`` …).
        voxels: ``(N, V)`` float32, one row per image (its repeats averaged).
        image_ids: ``(N,)`` stimulus ids (NSD: the 0-based index into the 73k images).
        repeats: ``(N,)`` trials averaged into each row.
        shared: ``(N,)`` True for images of the shared test set.
    """

    subject: str
    voxels: np.ndarray
    image_ids: np.ndarray
    repeats: np.ndarray
    shared: np.ndarray

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_voxels(self) -> int:
        return int(self.voxels.shape[1])

    def select(self, rows: np.ndarray) -> "SubjectResponses":
        return SubjectResponses(self.subject, self.voxels[rows], self.image_ids[rows], self.repeats[rows],
                                self.shared[rows])

    def train(self) -> "SubjectResponses":
        """The subject's own images (not in the shared test set)."""
        return self.select(np.flatnonzero(~self.shared))

    def test(self) -> "SubjectResponses":
        """The shared test images, in increasing id order (the same order for every subject)."""
        rows = np.flatnonzero(self.shared)
        return self.select(rows[np.argsort(self.image_ids[rows], kind="stable")])


def average_repeats(betas: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, V)`` trial betas with ``(T,)`` image ids -> ``(N, V)`` means, ``(N,)`` sorted ids, ``(N,)`` counts."""
    betas, image_ids = np.asarray(betas), np.asarray(image_ids)
    if betas.ndim != 2 or image_ids.shape != (len(betas),):
        raise ValueError(f"betas {betas.shape} and image ids {image_ids.shape}: expected (T, V) and (T,)")
    if not len(betas):
        raise ValueError("betas: no trials to average")
    order = np.argsort(image_ids, kind="stable")
    ids, starts, counts = np.unique(image_ids[order], return_index=True, return_counts=True)
    sums = np.add.reduceat(betas[order].astype(np.float64), starts, axis=0)  # (N, V)
    return (sums / counts[:, None]).astype(np.float32), ids, counts


@dataclass
class FmriSet:
    """Every subject's responses and the stimuli they saw (a CaptionSet whose image ids are the stimulus ids)."""

    subjects: dict[str, SubjectResponses]
    stimuli: CaptionSet

    def __post_init__(self) -> None:
        known = set(self.stimuli.image_ids)
        for name, responses in self.subjects.items():
            missing = [int(i) for i in responses.image_ids if int(i) not in known]
            if missing:
                raise ValueError(f"{name}: {len(missing)} stimulus id(s) without a picture and captions "
                                 f"(first {missing[0]})")
        self._index = {int(i): k for k, i in enumerate(self.stimuli.image_ids)}

    def stimulus_rows(self, image_ids) -> list[int]:
        """Rows of :attr:`stimuli` of the given stimulus ids."""
        return [self._index[int(i)] for i in image_ids]

    def stimuli_of(self, image_ids) -> CaptionSet:
        return self.stimuli.subset(self.stimulus_rows(image_ids))
