import numpy as np
import pytest
from unidit.training.frechet import frechet_distance


def test_identical_sets_have_zero_distance():
    x = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_matches_closed_form_for_shifted_and_scaled_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 3))
    b = 2.0 * rng.normal(size=(20000, 3)) + 1.0
    # |mu|^2 = 3; Tr(I + 4I - 2·2I) = 3  → 6
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)


def test_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="widths differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
