"""Process memory: glibc's allocator keeps large freed blocks for reuse.

A 256-image request allocates several megabyte-sized arrays (the body, the float64 squared
errors, onnxruntime's outputs, the answer). By default glibc serves every block above its
mmap threshold (128 KB, rising to at most 32 MB as blocks are freed) with a fresh ``mmap``
and returns it on ``free``, and trims the top of its heap whenever 2x that threshold is free:
each request then touches new pages, one page fault per 4 KB (0.3-0.4 ms of a 256-image
request's 6 ms here, most of it in the kernel). With the thresholds raised, freed blocks stay
in the heap and the next request reuses them; the process holds its peak instead (a few tens
of MB with the zoo and large requests).
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap, not from mmap: well above the largest block a request
# allocates (the float64 errors of 1,024 images of 28x28: 6.4 MB) and above the 32 MB that
# glibc's dynamic threshold can reach on its own.
MMAP_THRESHOLD = 64 * 1024 * 1024
# Free memory at the top of the heap returned to the system only beyond this.
TRIM_THRESHOLD = 128 * 1024 * 1024


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where the C library
    is not glibc (no ``mallopt``, or it refuses: musl, macOS)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1) and done
    if not done:
        logger.info("mallopt not available: large blocks are returned to the system on free")
    return done
