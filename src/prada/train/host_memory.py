"""Keep freed host memory in the process instead of handing it back to the OS after every step.

PyTorch's CPU tensors come straight from malloc. glibc serves blocks over 32 MB with a fresh mmap
and unmaps them on free, so every training step faults its largest tensors (logit chunks, the
optimizer's temporaries, KV caches) back in page by page, and on a VM each fault is expensive.
Measured on the 2-core development VM (SmolLM2-135M, fp32, 8 x 256, method prada): a median step
of 36.8 s with glibc's defaults, 27.6 s with mmap off and trimming raised (docs/scale.md).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>: give memory at the top of the heap back only above this size
M_MMAP_MAX = -4  # <malloc.h>: at most this many blocks served by mmap at once (0: none)


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed blocks (no mmap per large tensor, trim only above 2 GiB). False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs: leave them alone
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
