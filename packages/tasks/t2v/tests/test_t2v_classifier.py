"""The attribute classifier learns from a few real clips, caches itself, and its Fréchet distance
is ~0 for a set against itself and grows with a shift."""

from __future__ import annotations

import numpy as np
import pytest
from unidit.tasks.t2v import classifier as classifier_module
from unidit.tasks.t2v.classifier import (
    VideoAttributeClassifier,
    attribute_accuracy,
    classify,
    load_or_train_classifier,
)
from unidit.tasks.t2v.data import embedded_split
from unidit.tasks.t2v.scenes import COLOUR_NAMES, MOTIONS
from unidit.training.frechet import frechet_distance


@pytest.fixture(scope="module")
def trained(t2v_cache):
    train = embedded_split("train", seed=0, cache_dir=t2v_cache, size=160)
    test = embedded_split("test", seed=0, cache_dir=t2v_cache, size=64)
    model = load_or_train_classifier(train.videos, train.labels(), seed=0, cache_dir=t2v_cache,
                                     epochs=4, batch_size=16)
    return model, train, test


def test_classifier_beats_chance_on_held_out_clips(trained):
    model, _, test = trained
    predictions, embeddings = classify(model, test.videos)
    accuracy = attribute_accuracy(predictions, test.labels())
    assert embeddings.shape == (64, 128)
    assert accuracy["colour"] > 2.0 / len(COLOUR_NAMES), accuracy  # chance: 0.2
    assert accuracy["motion"] > 2.0 / len(MOTIONS), accuracy  # chance: 0.125


def test_frechet_distance_of_a_set_with_itself_is_zero(trained):
    model, train, test = trained
    _, real = classify(model, test.videos)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-3)
    _, dark = classify(model, (test.videos // 3).astype(np.uint8))  # the same scenes, three times darker
    _, reference = classify(model, train.videos)  # 160 other clips of the same distribution
    same, shifted = frechet_distance(reference, real), frechet_distance(reference, dark)
    assert shifted > 1.5 * same, (shifted, same)


def test_classifier_is_cached_and_reloaded(trained, t2v_cache, monkeypatch):
    model, train, test = trained
    monkeypatch.setattr(classifier_module, "train_video_classifier", lambda *a, **k: pytest.fail("trained again"))
    again = load_or_train_classifier(train.videos, train.labels(), seed=0, cache_dir=t2v_cache,
                                     epochs=4, batch_size=16)
    assert np.array_equal(classify(again, test.videos[:8])[0], classify(model, test.videos[:8])[0])
    assert list((t2v_cache / "t2v").glob("classifier-*/model.safetensors"))


def test_classifier_refuses_clips_of_another_shape():
    with pytest.raises(ValueError, match=r"expects uint8 clips \(B, 17, 64, 64, 3\), got \(2, 9, 64, 64, 3\)"):
        VideoAttributeClassifier().prepare(np.zeros((2, 9, 64, 64, 3), dtype=np.uint8))
