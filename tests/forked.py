"""Test helper (not collected): a second process forked from the pytest worker, not started afresh.

A fresh ``python`` re-imports torch and Lightning before it does anything (about
9 s on a 2-core Xeon with bytecode compiled, 18 s without); a forked child starts
with everything the worker has imported. The child computes on one torch thread
(the xdist workers do anyway: ``conftest.py``): OpenMP's worker threads are not
copied by a fork, and a child that asked for them would wait forever.

- :class:`Forked` runs one callable in a child: its output goes to a log file,
  its return value (an int, or None for 0) becomes its exit status.
- :func:`ddp_ranks` forks one child per DDP rank with the environment a
  launcher such as ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``MASTER_PORT``...):
  Lightning sees processes created externally and starts none itself.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


class Forked:
    """``target()`` in a forked child; ``wait()`` gives its exit status and log."""

    def __init__(self, target: Callable[[], int | None], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = Path(log)
        self.status: int | None = None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                out = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # pytest's capture replaced the originals
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh `python`, whatever the worker set
                if "torch" in sys.modules:  # a parent's OpenMP threads do not survive the fork: compute on one
                    sys.modules["torch"].set_num_threads(1)
                os.environ.update(env or {})
                result = target()
                code = 0 if result is None else int(result)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pid = pid

    def alive(self) -> bool:
        if self.status is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.status = os.waitstatus_to_exitcode(status)  # reaped here: wait() returns it
        return False

    def send_signal(self, signum: int) -> None:
        if self.status is None:  # not yet reaped, so the pid is still this child's
            os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> tuple[int, str]:
        """Exit status (negative: killed by that signal) and everything the child printed.

        After ``timeout`` seconds the child is killed (SIGKILL) and its status is ``-9``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if deadline is not None and time.monotonic() > deadline:
                self.send_signal(signal.SIGKILL)
                deadline = None  # and reap it below
            time.sleep(0.02)
        return self.status, self.log.read_text() if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ddp_ranks(target: Callable[[], int | None], world_size: int, logs: Path,
              timeout: float = 240.0) -> list[tuple[int, str]]:
    """``target()`` on ``world_size`` forked ranks of one process group; each rank's (exit status, log).

    A rank that fails leaves the others waiting in a collective: once one has failed, or after
    ``timeout`` seconds, the rest are killed rather than left behind.
    """
    logs.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    ranks = [
        Forked(target, logs / f"rank{rank}.log",
               env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": str(world_size),
                    "RANK": str(rank), "LOCAL_RANK": str(rank), "NODE_RANK": "0", "GROUP_RANK": "0",
                    "LOCAL_WORLD_SIZE": str(world_size)})
        for rank in range(world_size)
    ]
    deadline = time.monotonic() + timeout
    while any(rank.alive() for rank in ranks):
        if time.monotonic() > deadline or any(rank.status not in (None, 0) for rank in ranks):
            for rank in ranks:
                rank.send_signal(signal.SIGKILL)
        time.sleep(0.05)
    return [rank.wait() for rank in ranks]
