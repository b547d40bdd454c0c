"""glibc's allocator started where large message buffers are reused, not page-faulted in.

ZeroMQ's I/O thread reads every message into memory it allocates with ``malloc``, and the
message is freed when its last frame or array is dropped. glibc serves blocks above its mmap
threshold (128 KiB at first) as fresh mappings, and gives the free top of a heap back to the
kernel above its trim threshold; both thresholds rise only with the largest mapped block
freed so far, to at most twice the message size for a stream of equal messages. With a few
messages queued the freed ones then go back to the kernel, and the next ones fault their
pages in again: 40 to 60 faults per 1 MiB message, 300 to 600 per 8 MiB, and a fifth to
a half of the throughput at 1 MiB lost (README, Performance).

`prepare_for_large_messages` frees one block of glibc's largest dynamic threshold (32 MiB
on 64-bit), which takes both thresholds where glibc's own rule takes them for a program that
has freed such a block: blocks up to 32 MiB come from the heap, and up to 64 MiB of a heap's
free top is kept for reuse. It is glibc's own adjustment, so settings of the user's
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``, ``mallopt``),
which switch that adjustment off, still win. ``MFLOW_MALLOC_DEFAULTS=1`` leaves the
allocator as it is; on other C libraries this does nothing.
"""

from __future__ import annotations

import functools
import mmap
import os

__all__ = ["prepare_for_large_messages", "OPT_OUT"]

#: The environment variable that, set to anything but ``""`` or ``0``, leaves glibc's
#: allocator at its defaults.
OPT_OUT = "MFLOW_MALLOC_DEFAULTS"


def _is_glibc() -> bool:
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or not glibc
        return False
    return version is not None and version.startswith("glibc")


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT, "") not in ("", "0")


@functools.cache
def prepare_for_large_messages() -> bool:
    """Raise glibc's mmap and trim thresholds to their dynamic maximum, once per process.

    True when the block that does it was allocated and freed; False when opted out
    (`OPT_OUT`), off glibc, or when ``malloc`` failed. Whether glibc moved its thresholds
    it does not say: it keeps them where the user's settings put them.
    """
    if _opted_out() or not _is_glibc():
        return False
    import ctypes

    libc = ctypes.CDLL(None)
    malloc, free = libc.malloc, libc.free
    malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    # glibc's DEFAULT_MMAP_THRESHOLD_MAX; a freed mapped block above it moves nothing, and
    # the block's header and rounding to whole pages must keep it at or below.
    word = ctypes.sizeof(ctypes.c_long)
    largest = 4 * 1024 * 1024 * word if word == 8 else 512 * 1024
    block = malloc(largest - 2 * mmap.PAGESIZE)  # mapped, never touched: no page faults
    if not block:
        return False
    free(block)
    return True
