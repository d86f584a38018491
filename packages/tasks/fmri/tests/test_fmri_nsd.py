"""The NSD loader on files in NSD's layout written here, and on the example 4D NIfTI shipped with nibabel."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from nibabel.testing import data_path
from PIL import Image
from unidit.tasks.fmri import nsd
from unidit.tasks.fmri.responses import average_repeats

SHAPE = (4, 5, 3)


def _write_nsd(root, trials_per_session=6, sessions=2, seed=0):
    """Subject 1 saw 4 images (ids 1-based 11, 12 shared; 13, 14 its own) three times each over 2 sessions."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=np.int16) - 1
    mask[1:3, 1:4, :2] = 1  # 12 voxels
    mask[0, 0, 0] = 0
    path = nsd.mask_path(root, 1)
    path.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(mask, np.eye(4)), path)
    order = np.array([1, 3, 2, 4, 1, 3, 2, 4, 1, 2, 3, 4])  # 12 trials, 1-based into subjectim row
    subjectim = np.array([[11, 12, 13, 14], [21, 22, 23, 24]])  # 1-based nsd ids
    design = nsd.design_path(root)
    design.parent.mkdir(parents=True)
    scipy.io.savemat(design, {"masterordering": order[None], "subjectim": subjectim, "basiccnt": np.zeros((3, 40))})
    volumes = rng.integers(-3000, 3000, size=(*SHAPE, trials_per_session * sessions)).astype(np.int16)
    for s in range(sessions):
        file = nsd.betas_path(root, 1, s + 1)
        file.parent.mkdir(parents=True, exist_ok=True)
        chunk = volumes[..., s * trials_per_session:(s + 1) * trials_per_session]
        nib.save(nib.Nifti1Image(chunk, np.eye(4)), file)
    return mask > 0, order, subjectim, volumes


def test_reads_betas_mask_and_design_and_averages_repeats(tmp_path):
    mask, order, subjectim, volumes = _write_nsd(tmp_path)
    responses = nsd.load_subject(tmp_path, 1, trials_per_session=6, zscore_sessions=False)
    assert responses.subject == "subj01" and responses.num_voxels == 12 == mask.sum()
    assert responses.image_ids.tolist() == [10, 11, 12, 13]  # 0-based nsdIds
    assert responses.repeats.tolist() == [3, 3, 3, 3]
    assert responses.shared.tolist() == [True, True, True, True]  # masterordering <= 1000 for all four here
    betas = volumes[mask].T / 300.0  # (12 trials, 12 voxels)
    first = np.flatnonzero(order == 1)  # the trials of nsdId 10
    assert np.allclose(responses.voxels[0], betas[first].mean(0), atol=1e-5)
    assert responses.test().image_ids.tolist() == [10, 11, 12, 13] and len(responses.train()) == 0
    zscored = nsd.load_subject(tmp_path, 1, trials_per_session=6)  # per-session z-scores: same images
    assert zscored.image_ids.tolist() == [10, 11, 12, 13] and abs(float(zscored.voxels.mean())) < 0.5


def test_shared_flag_follows_masterordering(tmp_path):
    _write_nsd(tmp_path)
    responses = nsd.load_subject(tmp_path, 1, trials_per_session=6, shared_count=2)  # the first two images shared
    assert responses.shared.tolist() == [True, True, False, False]
    assert responses.train().image_ids.tolist() == [12, 13]


def test_a_volume_not_matching_the_mask_and_missing_trials_fail_clearly(tmp_path):
    _write_nsd(tmp_path)
    wrong = nsd.betas_path(tmp_path, 1, 2)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 2, 6), dtype=np.int16), np.eye(4)), wrong)
    with pytest.raises(ValueError, match=r"betas_session02.nii.gz: volume shape \(4, 5, 2, 6\) does not match "
                                         r"the ROI mask \(4, 5, 3\)"):
        nsd.load_subject(tmp_path, 1, trials_per_session=6)
    with pytest.raises(ValueError, match="trials are missing from the design"):
        nsd.load_subject(tmp_path, 1, sessions=[1], trials_per_session=6, design=nsd.NsdDesign(
            np.array([1, 2, 3]), np.array([[11, 12, 13, 14]]), tmp_path / "design.mat"))
    with pytest.raises(ValueError, match="6 trials; expected 750 per session"):
        nsd.load_subject(tmp_path, 1, sessions=[1])
    with pytest.raises(FileNotFoundError, match="nsdgeneral"):
        nsd.load_subject(tmp_path, 2, sessions=[1], trials_per_session=6)
    scipy.io.savemat(nsd.design_path(tmp_path), {"subjectim": np.ones((1, 4))})
    with pytest.raises(ValueError, match="no masterordering"):
        nsd.read_design(nsd.design_path(tmp_path))


def test_reads_the_example_4d_nifti_shipped_with_nibabel():
    example = os.path.join(data_path, "example4d.nii.gz")
    image = nib.load(example)
    assert image.shape == (128, 96, 24, 2)
    data = np.asanyarray(image.dataobj)
    mask = data[..., 0] > np.percentile(data[..., 0], 90)  # the brightest tenth of the first volume
    betas = nsd.read_session(example, mask, trials=2)
    assert betas.shape == (2, int(mask.sum())) and betas.dtype == np.float32
    assert np.allclose(betas, data[mask].T / 300.0)
    with pytest.raises(ValueError, match="2 trials; expected 750 per session"):
        nsd.read_session(example, mask)
    with pytest.raises(ValueError, match="does not match the ROI mask"):
        nsd.read_session(example, mask[:, :, :20])


def test_average_repeats_groups_trials_by_image():
    betas = np.arange(12, dtype=np.float32).reshape(6, 2)
    means, ids, counts = average_repeats(betas, np.array([5, 3, 5, 3, 5, 9]))
    assert ids.tolist() == [3, 5, 9] and counts.tolist() == [2, 3, 1]
    assert np.allclose(means, [[4, 5], [4, 5], [10, 11]])


def test_stimuli_join_nsd_ids_to_coco_captions(tmp_path):
    info = nsd.stim_info_path(tmp_path)
    info.parent.mkdir(parents=True)
    info.write_text(",cocoId,cocoSplit,nsdId\n0,532481,val2017,10\n1,42,train2017,11\n")
    for split, coco_id, text in (("val2017", 532481, "a kite in the sky"), ("train2017", 42, "two dogs run")):
        (tmp_path / "coco" / split).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "coco" / split / f"{coco_id:012d}.jpg")
        (tmp_path / "coco" / "annotations").mkdir(exist_ok=True)
        (tmp_path / "coco" / "annotations" / f"captions_{split}.json").write_text(json.dumps({
            "images": [{"id": coco_id, "file_name": f"{coco_id:012d}.jpg"}],
            "annotations": [{"image_id": coco_id, "caption": text}]}))
    stimuli = nsd.nsd_stimuli(info, tmp_path / "coco", [11, 10])
    assert stimuli.image_ids == [11, 10] and stimuli.captions == [["two dogs run"], ["a kite in the sky"]]
    assert stimuli.image(1).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="nsdId"):
        nsd.nsd_stimuli(info, tmp_path / "coco", [12])
