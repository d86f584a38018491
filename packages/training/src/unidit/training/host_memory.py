"""Keep freed host memory in the process, so CPU training steps stop page-faulting.

A CPU training step allocates and frees hundreds of megabytes of activations and
gradients, and PyTorch's CPU allocator takes them straight from the C library's
``malloc``. With glibc's defaults, blocks above the (dynamic) mmap threshold are
mapped fresh for every allocation and unmapped when freed, and free memory at the
top of the heap is handed back to the kernel once it exceeds the trim threshold.
Either way the next step touches pages the kernel must fault in and zero again: we
counted up to 150,000 minor page faults (about 600 MB) per MMDiT training step at
1024 tokens, a few percent of the step.

PyTorch's CPU performance guide recommends swapping in jemalloc or TCMalloc
(``LD_PRELOAD``) for this reason. :func:`retain_freed_host_memory` gets the same
effect from glibc itself, from inside the process, with ``mallopt`` (glibc manual,
"Malloc Tunable Parameters"): no block gets a mapping of its own (the number of
such mappings allowed is set to zero, so even the 128 MiB weight copy oneDNN makes
for the audio VAE's widest convolution comes from the heap), and the heap is not
trimmed, so memory freed by one step is reused by the next. The cost is that the
process keeps its peak heap (its resident size stays at the high-water mark), as
PyTorch's CUDA caching allocator does on a GPU. ``unidit`` commands call it at
start (scripts that train through the library can call it first themselves); set
``UNIDIT_RETAIN_HOST_MEMORY=0`` to keep the C library's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: free space at the heap top is kept up to 2 GiB
_TOP_PAD = 64 * 2**20  # grow the heap in 64 MiB steps rather than page by page

ENV_SWITCH = "UNIDIT_RETAIN_HOST_MEMORY"


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def retain_freed_host_memory() -> bool:
    """Tune glibc's ``malloc`` to reuse freed memory instead of returning it to the kernel.

    Returns True when the settings were applied; False on other C libraries or platforms
    (macOS, musl, Windows), or when ``UNIDIT_RETAIN_HOST_MEMORY=0``. Safe to call more
    than once; it affects the whole process from the call on.
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    libc = _glibc()
    if libc is None:
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_TOP_PAD, _TOP_PAD))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
