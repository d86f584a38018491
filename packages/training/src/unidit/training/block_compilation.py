"""When a run compiles its backbone blocks for training (``compile_blocks`` of every task).

Compiling the blocks (:mod:`unidit.backbones.training_blocks`) costs about a
minute before the first step on 2 CPU cores (45 s for the t2a default, 90 s
for t2v, measured on a 2-core Intel Xeon) and then makes each step 1.5x
faster there (t2a 0.154 -> 0.102 s, t2v 0.202 -> 0.132 s, bf16), so it pays
after about 1,500-2,000 steps. Tasks whose batches change length from step
to step (t2a) also set ``compile_dynamic``, so that one graph serves every
length. ``"auto"`` compiles on a CPU when the run is at least
:data:`AUTO_MIN_STEPS` steps long and a C++ compiler is on the PATH (Inductor
builds its CPU kernels with one); short runs, tests and machines without a
compiler stay eager. ``True`` compiles whatever the run (on a GPU Inductor
needs Triton), ``False`` never does.
"""

from __future__ import annotations

import os
import shutil

AUTO_MIN_STEPS = 2000  # below this the compile time is not repaid on 2 CPU cores


def cxx_compiler() -> str | None:
    """The C++ compiler Inductor would use (``$CXX``, else g++ / clang++ / c++), or None."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    return next((path for name in candidates if (path := shutil.which(name))), None)


def check_option(option) -> None:
    """Fail at configuration time on anything but true, false or ``"auto"``."""
    if option not in (True, False, "auto"):
        raise ValueError(f"compile_blocks: expected true, false or 'auto', got {option!r}")


def compile_decision(option: bool | str, max_steps: int | None, device_type: str) -> tuple[bool, str]:
    """``(compile?, why)`` for a run of ``max_steps`` steps on ``device_type`` with ``compile_blocks=option``."""
    check_option(option)
    if option is False:
        return False, "compile_blocks is off"
    if option is True:
        return True, "compile_blocks: true"
    if device_type != "cpu":
        return False, "compile_blocks: auto compiles on CPUs only (set true on a GPU)"
    if max_steps is None or max_steps < AUTO_MIN_STEPS:
        return False, f"compile_blocks: auto: {max_steps} steps do not repay the compile time (< {AUTO_MIN_STEPS})"
    if cxx_compiler() is None:
        return False, "compile_blocks: auto: no C++ compiler on the PATH (Inductor needs one), training eager"
    return True, f"compile_blocks: auto: {max_steps} steps on a CPU with a C++ compiler"
