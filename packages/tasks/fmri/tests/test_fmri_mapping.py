"""The mappers: ridge recovers a planted linear map, re-standardised outputs, MLP / cross-subject learn, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from unidit.tasks.fmri.mapping import ALPHAS, RidgeConfig, RidgeMapping, Standardiser
from unidit.tasks.fmri.mlp_mapper import MLPConfig, NeuralMapping


def _planted(n: int, voxels: int, features: int, noise: float, seed: int = 0, fit_rows: int | None = None):
    """Voxels with their own offsets and scales, features = a planted linear map of the voxels z-scored
    by the statistics of the first ``fit_rows`` (the training rows) + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, voxels)) * rng.uniform(0.5, 3.0, voxels) + rng.normal(size=voxels) * 5
    w = rng.normal(size=(voxels, features)) / np.sqrt(voxels)
    rows = x[:fit_rows]
    z = (x - rows.mean(0)) / rows.std(0)
    y = z @ w + 2.0 + noise * rng.normal(size=(n, features))
    return x.astype(np.float32), y.astype(np.float32), w


def test_ridge_recovers_a_planted_linear_map():
    x, y, w = _planted(400, 30, 12, noise=0.05, fit_rows=300)
    mapping = RidgeMapping(RidgeConfig(folds=0)).fit(x[:300], y[:300])
    assert mapping.alpha in ALPHAS and mapping.alpha <= 10.0  # little noise: a small penalty wins
    error = np.abs(mapping.coef.T - w).max()  # coef acts on the z-scored voxels the map was planted on
    assert error < 0.02, error
    assert np.allclose(mapping.intercept, 2.0, atol=0.02)
    prediction = mapping.predict(x[300:])
    assert np.corrcoef(prediction.ravel(), y[300:].ravel())[0, 1] > 0.99


def test_noisy_targets_choose_a_larger_penalty_and_outputs_are_restandardised():
    x, y, _ = _planted(120, 200, 8, noise=3.0, seed=1)
    clean = RidgeMapping(RidgeConfig(folds=0)).fit(*_planted(120, 200, 8, noise=0.01, seed=1)[:2])
    noisy = RidgeMapping().fit(x[:100], y[:100])
    assert noisy.alpha > clean.alpha
    prediction = noisy.predict(x[:100])  # held-out statistics: rescaled, centred on the target's training mean
    target = Standardiser.fit(y[:100])
    assert np.allclose(noisy.restandardise.target.mean, target.mean, atol=1e-4)
    unscaled = noisy.voxels.transform(x[100:]) @ noisy.coef.T + noisy.intercept
    assert noisy.predict(x[100:]).std() > unscaled.std()  # shrunken ridge outputs are scaled back up
    assert prediction.shape == (100, 8)


def test_ridge_round_trips_through_a_folder_and_names_bad_input(tmp_path):
    x, y, _ = _planted(60, 20, 5, noise=0.5)
    mapping = RidgeMapping().fit(x, y)
    loaded = RidgeMapping.load(mapping.save(tmp_path / "ridge"))
    assert loaded.alpha == mapping.alpha
    assert np.array_equal(loaded.predict(x), mapping.predict(x))
    with pytest.raises(ValueError, match=r"voxels: expected \(N, 20\)"):
        mapping.predict(x[:, :19])
    with pytest.raises(ValueError, match="same N"):
        RidgeMapping().fit(x, y[:-1])
    with pytest.raises(ValueError, match="alphas"):
        RidgeConfig(alphas=[0.0])


def test_mlp_and_cross_subject_mappers_learn_and_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    shared = rng.normal(size=(16, 10))  # a latent the subjects' voxels both encode
    data = {}
    for s, voxels in (("subj01", 40), ("subj02", 25)):
        latent = rng.normal(size=(150, 16))
        x = latent @ rng.normal(size=(16, voxels)) + 0.1 * rng.normal(size=(150, voxels))
        data[s] = (x.astype(np.float32), (latent @ shared).astype(np.float32))
    config = MLPConfig(shared_dim=32, hidden=64, dropout=0.0, steps=100, batch_size=32, lr=3e-3, eval_every=10)
    mapping = NeuralMapping(config).fit(data)
    losses = [loss for _, loss in mapping.history]
    assert min(losses) < 0.5 * losses[0], losses  # held-out error falls
    x, y = data["subj02"]
    assert np.corrcoef(mapping.predict(x, "subj02").ravel(), y.ravel())[0, 1] > 0.8
    loaded = NeuralMapping.load(mapping.save(tmp_path / "mlp"))
    assert np.allclose(loaded.predict(x, "subj02"), mapping.predict(x, "subj02"), atol=1e-6)
    with pytest.raises(ValueError, match="subj03"):
        mapping.predict(x, "subj03")
    with pytest.raises(ValueError, match=r"expected \(N, 25\)"):
        mapping.predict(data["subj01"][0], "subj02")
