"""The learned motion / text evaluator: it tells matched pairs apart after a short training, and its
metrics behave (R-precision far above chance on real pairs, FID 0 on identical sets and large on a
collapsed set, cached weights reloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unidit.tasks.motion.data import load_split
from unidit.tasks.motion.evaluator_training import (
    CaptionStates,
    EvaluatorSettings,
    embed_captions,
    embed_motions,
    load_or_train_motion_evaluator,
    margin_loss,
)
from unidit.tasks.motion.synthetic import EmbeddedMotion, embedded_dataset
from unidit.tasks.motion.text_motion_metrics import diversity, matching_distance, multimodality, r_precision
from unidit.training.frechet import frechet_distance

DATA = EmbeddedMotion(seed=11, num_train=64, num_val=1, num_test=40)
SETTINGS = EvaluatorSettings(epochs=8, batch_size=16, lr=3e-3, hidden=64)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    folder = embedded_dataset(DATA, cache)
    train = load_split(folder, "train", min_frames=17, max_frames=80)
    test = load_split(folder, "test", min_frames=17, max_frames=80)
    states = CaptionStates()
    model = load_or_train_motion_evaluator(train, states, SETTINGS, cache)
    motions = [clip.features[: len(clip.features) // 4 * 4] for clip in test.clips]
    text = embed_captions(model, states, [clip.captions[0].text for clip in test.clips])
    return {"cache": cache, "train": train, "states": states, "model": model, "motions": motions,
            "text": text, "motion": embed_motions(model, motions)}


def test_r_precision_on_real_test_pairs_is_far_above_chance(evaluated):
    text, motion = evaluated["text"], evaluated["motion"]
    top = r_precision(text, motion, pool=32)
    assert top[0] > 4 / 32 and top[0] <= top[1] <= top[2]  # chance is 1/32, 2/32, 3/32
    mismatched = np.random.default_rng(0).permutation(len(text))
    assert r_precision(text[mismatched], motion, pool=32)[2] < top[2] / 2
    assert matching_distance(text, motion) < matching_distance(text[mismatched], motion)


def test_fid_is_zero_for_one_set_and_large_for_a_collapsed_one(evaluated):
    motion, model = evaluated["motion"], evaluated["model"]
    assert frechet_distance(motion, motion) < 1e-6
    floor = frechet_distance(motion[0::2], motion[1::2])
    collapsed = embed_motions(model, [evaluated["motions"][i % 2] for i in range(len(motion))])  # two motions only
    assert frechet_distance(collapsed[0::2], motion[1::2]) > 3 * floor
    assert diversity(collapsed) < diversity(motion) / 2


def test_the_trained_evaluator_is_cached_and_reloaded(evaluated):
    folders = list((evaluated["cache"] / "motion").glob("evaluator-*"))
    assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    again = load_or_train_motion_evaluator(evaluated["train"], evaluated["states"], SETTINGS, evaluated["cache"])
    assert np.allclose(embed_motions(again, evaluated["motions"]), evaluated["motion"], atol=1e-6)


def test_margin_loss_pulls_pairs_and_pushes_other_captions_only():
    text = torch.tensor([[0.0, 0.0], [20.0, 0.0], [20.0, 0.0]])
    same_caption = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    assert float(margin_loss(text.clone(), text, same_caption, 10.0)) == 0.0  # rows 1, 2: one caption, no negatives
    near = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    loss = margin_loss(near, near, torch.eye(2, dtype=torch.bool), 10.0)
    assert float(loss) == pytest.approx((10.0 - 3.0) ** 2)


def test_metrics_on_known_embeddings():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(64, 8))
    assert np.array_equal(r_precision(points, points, pool=32), np.ones(3))
    with pytest.raises(ValueError, match="fewer than one pool"):
        r_precision(points[:10], points[:10], pool=32)
    same = np.repeat(points[:5, None], 4, axis=1)  # (5 captions, 4 identical motions, 8)
    assert multimodality(same, pairs=3) == 0.0
    assert multimodality(same + rng.normal(size=same.shape), pairs=3) > 0.5
