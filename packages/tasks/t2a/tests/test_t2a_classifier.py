"""The event classifier: learns above chance, top-k accuracy, caching, Fréchet sanity."""

from __future__ import annotations

import numpy as np
from unidit.tasks.t2a.classifier import (
    EventClassifier,
    classify,
    load_or_train_classifier,
    top_k_accuracy,
    top_k_correct,
)
from unidit.tasks.t2a.data import embedded_clips
from unidit.tasks.t2a.sounds import KINDS
from unidit.training.frechet import frechet_distance

TRAINING = dict(epochs=6, batch_size=8, lr=2e-3, progress=False)


def test_top_k_accuracy_needs_exactly_the_true_kinds():
    scores = np.zeros((3, len(KINDS)), dtype=np.float32)
    scores[0, KINDS.index("bell")] = 0.9  # one kind, right
    scores[1, [KINDS.index("hum"), KINDS.index("beep")]] = (0.8, 0.7)  # two kinds, both right
    scores[2, [KINDS.index("hum"), KINDS.index("siren")]] = (0.8, 0.7)  # two kinds, one wrong
    truth = [("bell",), ("beep", "hum"), ("hum", "knock")]
    assert top_k_correct(scores, truth, KINDS).tolist() == [True, True, False]
    assert abs(top_k_accuracy(scores, truth, KINDS) - 2 / 3) < 1e-9


def test_classifier_learns_above_chance_and_is_cached(tmp_path):
    train = embedded_clips("train", num_train=160, num_val=10, test_per_kind=4, cache_dir=tmp_path)
    test = embedded_clips("test", num_train=160, num_val=10, test_per_kind=4, cache_dir=tmp_path)
    kinds = [spec.kinds for spec in train.specs]
    model = load_or_train_classifier(train.waveforms, kinds, KINDS, cache_dir=tmp_path, **TRAINING)
    scores, embeddings = classify(model, test.waveforms)
    accuracy = top_k_accuracy(scores, [spec.kinds for spec in test.specs], KINDS)
    assert accuracy > 3 / len(KINDS), accuracy  # chance is about 1/9 for single events
    assert embeddings.shape == (len(test), model.head.in_features)
    cached = list((tmp_path / "t2a").glob("classifier-*/model.safetensors"))
    assert len(cached) == 1
    again = load_or_train_classifier(train.waveforms, kinds, KINDS, cache_dir=tmp_path, **TRAINING)
    np.testing.assert_array_equal(classify(again, test.waveforms)[0], scores)
    assert isinstance(EventClassifier.from_pretrained(cached[0].parent), EventClassifier)
    assert frechet_distance(embeddings, embeddings) < 1e-6
    noise = [np.random.default_rng(i).uniform(-0.5, 0.5, len(w)).astype(np.float32)
             for i, w in enumerate(test.waveforms)]
    assert frechet_distance(classify(model, noise)[1], embeddings) > frechet_distance(embeddings[::2], embeddings[1::2])
