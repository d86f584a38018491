"""The Natural Scenes Dataset (Allen et al. 2022) in its own layout: betas, ROI mask, design, stimuli.

Paths under the NSD root (as the NSD data release names them)::

    nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.nii.gz
    nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz
    nsddata/experiments/nsd/nsd_expdesign.mat
    nsddata/experiments/nsd/nsd_stim_info_merged.csv

* **betas** (GLMsingle, "fithrf_GLMdenoise_RR"): one 4D NIfTI per session,
  ``(X, Y, Z, 750)`` int16, percent signal change × 300; read with ``nibabel``
  and divided by :data:`BETA_SCALE`.
* **nsdgeneral**: the ROI over visual cortex (1 inside; 0 / -1 outside; subj01:
  15,724 voxels at 1.8 mm). Voxels are taken in C order of the volume.
* **nsd_expdesign.mat** (``scipy.io.loadmat``): ``masterordering`` (30,000
  trials: which of a subject's 10,000 images each trial showed, 1-based) and
  ``subjectim`` (8 × 10,000: the 1-based 73k-image ids of each subject's
  images). ``masterordering <= 1000`` marks the shared-1000 test images, the
  same for every subject.
* **nsd_stim_info_merged.csv**: ``nsdId`` (0-based 73k id) -> ``cocoId`` and
  ``cocoSplit`` (``train2017`` / ``val2017``), the key to the COCO captions.

:func:`load_subject` z-scores each voxel within a session (optional, as MindEye
does), averages the repeats of each image and returns
:class:`~unidit.tasks.fmri.responses.SubjectResponses` keyed by 0-based nsdId.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.io
from unidit.tasks.caption.data import CaptionSet, read_coco_captions
from unidit.tasks.fmri.responses import SubjectResponses, average_repeats

BETA_SCALE = 300.0  # NSD stores int16 percent signal change x 300
TRIALS_PER_SESSION = 750
SHARED_COUNT = 1000  # masterordering <= 1000: the shared-1000 images


def subject_name(subject: int) -> str:
    return f"subj{int(subject):02d}"


def betas_path(root: str | os.PathLike, subject: int, session: int) -> Path:
    return (Path(root) / "nsddata_betas" / "ppdata" / subject_name(subject) / "func1pt8mm"
            / "betas_fithrf_GLMdenoise_RR" / f"betas_session{int(session):02d}.nii.gz")


def mask_path(root: str | os.PathLike, subject: int) -> Path:
    return Path(root) / "nsddata" / "ppdata" / subject_name(subject) / "func1pt8mm" / "roi" / "nsdgeneral.nii.gz"


def design_path(root: str | os.PathLike) -> Path:
    return Path(root) / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"


def stim_info_path(root: str | os.PathLike) -> Path:
    return Path(root) / "nsddata" / "experiments" / "nsd" / "nsd_stim_info_merged.csv"


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected {what}")
    return path


@dataclass
class NsdDesign:
    """``masterordering`` ``(T,)`` and ``subjectim`` ``(S, I)``, both 1-based as in the .mat file."""

    masterordering: np.ndarray
    subjectim: np.ndarray
    path: Path

    def trial_images(self, subject: int, trials: np.ndarray, shared_count: int = SHARED_COUNT
                     ) -> tuple[np.ndarray, np.ndarray]:
        """0-based global trial indices -> ``(nsdIds (0-based), shared flags)``; errors name the missing trials.

        A trial is shared when its ``masterordering`` entry is at most ``shared_count``.
        """
        trials = np.asarray(trials)
        if trials.size and trials.max() >= len(self.masterordering):
            raise ValueError(f"{self.path}: trials {int(trials.min()) + 1}-{int(trials.max()) + 1} requested but the "
                             f"design's masterordering lists {len(self.masterordering)} trials; trials are missing "
                             "from the design (more sessions than the experiment had?)")
        if not 1 <= subject <= len(self.subjectim):
            raise ValueError(f"{self.path}: subject {subject} not in subjectim (it has {len(self.subjectim)} subjects)")
        order = self.masterordering[trials]  # (T,) 1-based into the subject's images
        if order.min(initial=1) < 1 or order.max(initial=1) > self.subjectim.shape[1]:
            raise ValueError(f"{self.path}: masterordering values outside 1..{self.subjectim.shape[1]}")
        return self.subjectim[subject - 1, order - 1].astype(np.int64) - 1, order <= shared_count


def read_design(path: str | os.PathLike) -> NsdDesign:
    """``nsd_expdesign.mat`` with ``masterordering`` and ``subjectim`` (read by ``scipy.io.loadmat``)."""
    path = _existing(Path(path), "the NSD design file nsd_expdesign.mat")
    try:
        data = scipy.io.loadmat(str(path))
    except (ValueError, OSError, TypeError) as error:
        raise ValueError(f"{path}: cannot read as a MATLAB file ({error}); expected nsd_expdesign.mat") from error
    missing = [k for k in ("masterordering", "subjectim") if k not in data]
    if missing:
        raise ValueError(f"{path}: no {' or '.join(missing)}; expected the NSD design with masterordering "
                         "and subjectim")
    order = np.asarray(data["masterordering"]).astype(np.int64).reshape(-1)  # (T,)
    images = np.atleast_2d(np.asarray(data["subjectim"]).astype(np.int64))  # (S, I)
    return NsdDesign(order, images, path)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """``(X, Y, Z)`` bool ROI of ``nsdgeneral.nii.gz`` (values > 0 are inside)."""
    path = _existing(Path(path), "the nsdgeneral ROI (a 3D NIfTI)")
    data = np.asanyarray(_load_nifti(path).dataobj)
    if data.ndim != 3:
        raise ValueError(f"{path}: a {data.ndim}D volume of shape {data.shape}; expected a 3D ROI mask")
    mask = data > 0
    if not mask.any():
        raise ValueError(f"{path}: the mask selects no voxel (no value > 0)")
    return mask


def _load_nifti(path: Path):
    try:
        return nib.load(str(path))
    except Exception as error:  # nibabel raises several types for foreign or truncated files
        raise ValueError(f"{path}: cannot read as NIfTI ({error})") from error


def read_session(path: str | os.PathLike, mask: np.ndarray, trials: int | None = TRIALS_PER_SESSION,
                 scale: float = BETA_SCALE) -> np.ndarray:
    """``(trials, V)`` float32 betas of one session file inside ``mask`` (divided by ``scale``)."""
    path = _existing(Path(path), "a betas_sessionNN.nii.gz of NSD (X, Y, Z, trials)")
    image = _load_nifti(path)
    shape = tuple(image.shape)
    if len(shape) != 4 or shape[:3] != mask.shape:
        raise ValueError(f"{path}: volume shape {shape} does not match the ROI mask {mask.shape}; expected "
                         f"{(*mask.shape, trials or 'trials')} (betas and mask of the same subject and resolution)")
    if trials is not None and shape[3] != trials:
        raise ValueError(f"{path}: {shape[3]} trials; expected {trials} per session")
    data = np.asanyarray(image.dataobj)  # (X, Y, Z, T), int16 unless the file sets a scale
    return (data[mask].T / scale).astype(np.float32)  # (T, V)


def sessions_present(root: str | os.PathLike, subject: int) -> list[int]:
    """Session numbers 1, 2, … whose betas file exists, up to the first gap."""
    sessions = []
    while betas_path(root, subject, len(sessions) + 1).is_file():
        sessions.append(len(sessions) + 1)
    return sessions


def load_subject(root: str | os.PathLike, subject: int, sessions: list[int] | None = None, *,
                 design: NsdDesign | None = None, trials_per_session: int = TRIALS_PER_SESSION,
                 zscore_sessions: bool = True, scale: float = BETA_SCALE,
                 shared_count: int = SHARED_COUNT) -> SubjectResponses:
    """One subject's betas, ROI-masked, per-session z-scored (optional), repeats averaged per image.

    ``sessions`` None = every session file present (1, 2, … up to the first gap).
    """
    sessions = sessions if sessions is not None else sessions_present(root, subject)
    if not sessions:
        raise FileNotFoundError(f"{betas_path(root, subject, 1)}: not found; expected the subject's beta sessions")
    design = design or read_design(design_path(root))
    mask = read_mask(mask_path(root, subject))
    betas, trials = [], []
    for session in sessions:
        values = read_session(betas_path(root, subject, session), mask, trials_per_session, scale)  # (T, V)
        if zscore_sessions:
            std = values.std(axis=0)
            values = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
        betas.append(values.astype(np.float32))
        trials.append((session - 1) * trials_per_session + np.arange(len(values)))
    trials = np.concatenate(trials)
    image_ids, shared = design.trial_images(subject, trials, shared_count)
    voxels, ids, counts = average_repeats(np.concatenate(betas), image_ids)
    shared_ids = set(image_ids[shared].tolist())
    return SubjectResponses(subject_name(subject), voxels, ids, counts, np.isin(ids, list(shared_ids)))


def read_stim_info(path: str | os.PathLike) -> dict[int, tuple[int, str]]:
    """``{nsdId: (cocoId, cocoSplit)}`` from ``nsd_stim_info_merged.csv``."""
    path = _existing(Path(path), "nsd_stim_info_merged.csv with nsdId, cocoId and cocoSplit columns")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"nsdId", "cocoId", "cocoSplit"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: no column(s) {sorted(missing)}; expected nsdId, cocoId and cocoSplit")
        return {int(row["nsdId"]): (int(row["cocoId"]), row["cocoSplit"]) for row in reader}


def nsd_stimuli(stim_info: str | os.PathLike, coco_root: str | os.PathLike, nsd_ids) -> CaptionSet:
    """The COCO pictures and captions of ``nsd_ids``, as a CaptionSet whose image ids are those nsdIds.

    ``coco_root`` holds ``annotations/captions_{train,val}2017.json`` and the ``train2017`` /
    ``val2017`` picture folders (read by the caption task's COCO loader). NSD showed
    each picture cropped to a square (``cropBox``); the pictures here are uncropped.
    """
    info = read_stim_info(stim_info)
    wanted = [int(i) for i in nsd_ids]
    unknown = [i for i in wanted if i not in info]
    if unknown:
        raise ValueError(f"{stim_info}: {len(unknown)} nsdId(s) not listed (first {unknown[0]})")
    sets: dict[str, tuple[CaptionSet, dict[int, int]]] = {}
    for split in sorted({info[i][1] for i in wanted}):
        coco = read_coco_captions(Path(coco_root) / "annotations" / f"captions_{split}.json", Path(coco_root) / split)
        sets[split] = (coco, {cid: k for k, cid in enumerate(coco.image_ids)})
    paths, captions = [], []
    for nsd_id in wanted:
        coco_id, split = info[nsd_id]
        coco, index = sets[split]
        if coco_id not in index:
            raise ValueError(f"{coco_root}: COCO image {coco_id} (nsdId {nsd_id}) not in captions_{split}.json")
        paths.append(coco.image_paths[index[coco_id]])
        captions.append(coco.captions[index[coco_id]])
    return CaptionSet(wanted, paths, captions)
