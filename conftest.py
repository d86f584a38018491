"""Settings every test tree shares (``tests/``, ``packages/*/tests``, ``apps/tests``).

``uv run pytest`` runs the suite on two pytest-xdist workers (``-n 2 --dist loadfile`` in
``pyproject.toml``: a file's tests stay on one worker, so its module fixtures are built once).
Each worker computes with one torch thread: the tests' models are tiny, so a second intra-op
thread buys little, and two workers of two threads each would oversubscribe two cores.
"""

from __future__ import annotations

import os

import pytest
import torch


HEAVY_FIRST = (
    "tests/test_joint_ddp.py",
    "tests/test_benchmarks_smoke.py",
    "tests/test_ddp.py",
    "tests/test_checkpoint_faults.py",
    "tests/test_preemption.py",
    "apps/tests/test_caption_app.py",
    "apps/tests/test_fmri_app.py",
    "packages/tasks/caption/tests/test_caption_model.py",
)
"""Files that start processes or fit several models (15-50 s each on 2 cores): xdist hands files out
in collection order, so starting with these keeps one worker from finishing alone on a long one."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put :data:`HEAVY_FIRST` files first, each file's tests kept together and in order."""
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(HEAVY_FIRST))

    items.sort(key=key)  # stable: the rest keep pytest's order


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # and in the processes a test starts (DDP ranks, CLI runs)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (tiny models: as fast, and no OpenMP spin-waits on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
