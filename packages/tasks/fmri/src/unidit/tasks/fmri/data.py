"""Where ``unidit fit|eval fmri`` gets its responses: the simulated NSD (default) or a real NSD folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Literal, Optional

import numpy as np
from unidit.tasks.fmri import nsd
from unidit.tasks.fmri.responses import FmriSet, SubjectResponses
from unidit.tasks.fmri.simulated import SimulationConfig, simulated_nsd


@dataclass
class FmriData:
    """The responses to decode.

    Attributes:
        source: ``simulated`` (the caption scenes seen by simulated subjects, generated and cached) or
            ``nsd`` (an NSD folder, see :mod:`unidit.tasks.fmri.nsd`, with COCO under ``coco_root``).
        simulation: the simulated NSD's configuration.
        nsd_root: the NSD folder (holding nsddata/ and nsddata_betas/) for ``nsd``.
        coco_root: COCO 2017 (annotations/ and train2017/, val2017/) for ``nsd``.
        subjects: NSD subject numbers to load (``nsd``).
        sessions: the first this many sessions of each NSD subject; None = all present.
        zscore_sessions: z-score each voxel within each session before averaging repeats.
        cache_dir: cache of the caption scenes and the simulated NSD.
    """

    source: Literal["simulated", "nsd"] = "simulated"
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    nsd_root: Optional[str] = None
    coco_root: Optional[str] = None
    subjects: list[int] = field(default_factory=lambda: [1])
    sessions: Optional[int] = None
    zscore_sessions: bool = True
    cache_dir: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.simulation, dict):
            self.simulation = SimulationConfig(**self.simulation)
        if self.source not in ("simulated", "nsd"):
            raise ValueError(f"source: expected simulated or nsd, got {self.source!r}")

    def load(self) -> FmriSet:
        if self.source == "simulated":
            return simulated_nsd(self.simulation, self.cache_dir, zscore_sessions=self.zscore_sessions)
        if not self.nsd_root or not self.coco_root:
            raise ValueError("data.nsd_root and data.coco_root are required for data.source nsd (the NSD folder "
                             "and the COCO 2017 folder with annotations/, train2017/ and val2017/)")
        design = nsd.read_design(nsd.design_path(self.nsd_root))
        subjects = {}
        for number in self.subjects:
            present = nsd.sessions_present(self.nsd_root, number)
            sessions = present[: self.sessions] if self.sessions is not None else present
            responses = nsd.load_subject(self.nsd_root, number, sessions, design=design,
                                         zscore_sessions=self.zscore_sessions)
            subjects[responses.subject] = responses
        ids = np.unique(np.concatenate([r.image_ids for r in subjects.values()]))
        stimuli = nsd.nsd_stimuli(nsd.stim_info_path(self.nsd_root), self.coco_root, ids)
        return FmriSet(subjects, stimuli)


def shared_test(dataset: FmriSet) -> tuple[np.ndarray, dict[str, SubjectResponses]]:
    """The shared test images every subject saw (sorted ids) and each subject's responses to them, in that order."""
    tests = {s: r.test() for s, r in dataset.subjects.items()}
    common = reduce(np.intersect1d, [t.image_ids for t in tests.values()])
    if len(common) < 2:
        raise ValueError(f"the subjects {sorted(tests)} share {len(common)} test image(s); expected at least 2")
    return common, {s: t.select(np.flatnonzero(np.isin(t.image_ids, common))) for s, t in tests.items()}
