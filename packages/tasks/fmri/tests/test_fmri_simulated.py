"""The simulated NSD: NSD's layout on disk, deterministic, cached, a shared test set, responses encoding the scenes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from unidit.tasks.fmri import nsd
from unidit.tasks.fmri.mapping import RidgeConfig, RidgeMapping
from unidit.tasks.fmri.simulated import (
    INFO_FILE, SimulationConfig, opponent_field, scene_attributes, simulated_nsd, simulation_folder,
)

SCENES = {"train": 60, "val": 2, "test": 12}


def _config(**overrides) -> SimulationConfig:
    return SimulationConfig(**{"voxels": [90, 60], "train_images": 48, "num_test": 12, "trials_per_session": 60,
                               "noise": 0.5, "scene_sizes": SCENES, **overrides})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def simulated(cache):
    return simulated_nsd(_config(), cache)


def test_written_in_nsd_layout_and_read_back_by_the_nsd_loader(simulated, cache):
    folder = simulation_folder(_config(), cache)
    info = json.loads((folder / INFO_FILE).read_text())
    assert info["sessions"] == 3 and info["shared_count"] == 12  # 3 x 60 trials in sessions of 60
    betas = nib.load(nsd.betas_path(folder, 2, 3))
    assert betas.get_data_dtype() == np.int16 and betas.shape[3] == 60
    assert nsd.read_mask(nsd.mask_path(folder, 2)).sum() == 60
    design = nsd.read_design(nsd.design_path(folder))
    assert design.subjectim.shape == (2, 60) and len(design.masterordering) == 180
    for name, voxels in (("subj01", 90), ("subj02", 60)):
        responses = simulated.subjects[name]
        assert responses.voxels.shape == (60, voxels)
        assert (responses.repeats == 3).all()  # 3 repeats averaged per image
        assert responses.test().image_ids.tolist() == list(range(12))  # the shared test scenes, for both
        assert len(responses.train()) == 48 and (responses.train().image_ids >= 12).all()
    own = [set(simulated.subjects[s].train().image_ids.tolist()) for s in ("subj01", "subj02")]
    assert own[0] != own[1]  # each subject draws its own images
    stimuli = simulated.stimuli_of([0, 12])
    assert stimuli.objects and stimuli.captions[0]  # scenes with their captions and true objects


def test_deterministic_and_cached(simulated, cache, tmp_path):
    folder = simulation_folder(_config(), cache)
    stamp = (folder / INFO_FILE).stat().st_mtime_ns
    again = simulated_nsd(_config(), cache)
    assert (folder / INFO_FILE).stat().st_mtime_ns == stamp  # read from the cache, not simulated again
    fresh = simulated_nsd(_config(), tmp_path)  # simulated anew elsewhere: the same responses
    for name in simulated.subjects:
        assert np.array_equal(fresh.subjects[name].voxels, simulated.subjects[name].voxels)
        assert np.array_equal(again.subjects[name].image_ids, simulated.subjects[name].image_ids)
    other = simulated_nsd(_config(seed=1), cache)
    assert not np.array_equal(other.subjects["subj01"].voxels[:, :10], simulated.subjects["subj01"].voxels[:, :10])


def test_responses_encode_the_scene_far_above_the_noise(simulated):
    responses = simulated.subjects["subj01"]
    train, test = responses.train(), responses.test()
    targets = {}
    for split, part in (("train", train), ("test", test)):
        stimuli = simulated.stimuli_of(part.image_ids)
        targets[split] = np.concatenate([scene_attributes(stimuli.objects), opponent_field(stimuli.images())
                                         .reshape(len(stimuli), -1)], axis=1)
    mapping = RidgeMapping(RidgeConfig(folds=0)).fit(train.voxels, targets["train"])
    predicted = mapping.predict(test.voxels)
    r = np.corrcoef(predicted.ravel(), targets["test"].ravel())[0, 1]
    shuffled = np.corrcoef(predicted[::-1].ravel(), targets["test"].ravel())[0, 1]
    assert r > 0.5 and r > shuffled + 0.2, (r, shuffled)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="whole sessions"):
        _config(trials_per_session=50)
    with pytest.raises(ValueError, match="num_test"):
        _config(num_test=13)
    with pytest.raises(ValueError, match="voxels"):
        _config(voxels=[])
