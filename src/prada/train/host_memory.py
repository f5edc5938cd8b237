"""Keep freed host memory in the process instead of handing it back to the OS after every step.

PyTorch's CPU tensors come straight from malloc. glibc serves blocks over 32 MB with a fresh mmap
and unmaps them on free, so every training step faults its largest tensors (logit chunks, the
optimizer's temporaries) back in page by page, as every decoding step does its grown KV cache; on a VM
each fault is expensive (the measured step and generation times are in docs/scale.md).
"""

from __future__ import annotations

import ctypes
import sys

ENV = "PRADA_KEEP_FREED_MEMORY"
"""Device switch, auto | on | off, read once by the `prada` command before training, evaluating or running an
experiment (a library call never changes the process's allocator). auto: on unless a CUDA device is visible."""

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


def configure_host_memory(setting: str | None = None) -> bool:
    """Apply the PRADA_KEEP_FREED_MEMORY switch (or `setting`) to this process; True if glibc took it."""
    import os

    from prada.config import SWITCH, switch_on
    from prada.errors import PradaError

    setting = setting or os.environ.get(ENV, "auto")
    if setting not in SWITCH:
        raise PradaError(f"{ENV}={setting!r}: choose one of {', '.join(SWITCH)}")
    if not switch_on(setting, auto=_no_cuda()):
        return False
    return keep_freed_memory()


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()
