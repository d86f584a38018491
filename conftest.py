"""Settings every test tree shares (``tests/``, ``packages/*/tests``, ``apps/tests``).

``uv run pytest`` runs the suite on two pytest-xdist workers (``-n 2 --dist loadfile`` in
``pyproject.toml``: a file's tests stay on one worker, so its module fixtures are built once).
Each worker computes with one torch thread: the tests' models are tiny, so a second intra-op
thread buys little, and two workers of two threads each would oversubscribe two cores.
"""

from __future__ import annotations

import gc
import os

import pytest


HEAVY_FIRST = (
    "tests/test_benchmarks_smoke.py",
    "tests/test_joint_resume.py",
    "tests/test_joint_ddp.py",
    "tests/test_joint_app.py",
    "packages/tasks/motion/tests/test_evaluator.py",
    "packages/tasks/shape3d/tests/test_shape3d_classifier.py",
    "packages/tokenizers/tests/test_video_vae_training.py",
    "packages/tasks/t2v/tests/test_t2v_classifier.py",
)
"""Files that run several fits or a benchmark (10-25 s each on 2 cores, ``--durations``): xdist hands
files out in collection order, so starting with these keeps one worker from finishing alone on a long one."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put :data:`HEAVY_FIRST` files first, each file's tests kept together and in order."""
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(HEAVY_FIRST))

    items.sort(key=key)  # stable: the rest keep pytest's order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every module is imported now: keep those objects out of later garbage collections.

    A full collection walks torch, Lightning, transformers and the rest (~0.4 s on 2 cores); a
    worker ran a dozen of them, ~5 s, before this.
    """
    gc.collect()
    gc.freeze()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # torch is imported here only: the controller never needs it
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # and in the processes a test starts (DDP ranks, CLI runs)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (tiny models: as fast, and no OpenMP spin-waits on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
