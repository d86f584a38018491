"""Shared fixtures for the cross-package tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shape_cache(tmp_path_factory):
    """A cache folder holding a small embedded 3D dataset (generated once per session)."""
    folder = tmp_path_factory.mktemp("unidit-cache")
    return folder


@pytest.fixture(scope="session")
def small_shapes(shape_cache):
    from unidit.tasks.shape3d.data import generate_embedded  # here: pytest's controller process never imports torch

    return generate_embedded(seed=0, num_train=64, num_val=16, num_test=32, cache_dir=shape_cache)
