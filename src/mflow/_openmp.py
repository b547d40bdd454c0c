"""The number of OpenMP threads bitshuffle's codec runs on: one per call unless asked.

bitshuffle parallelises every call with OpenMP over all cores. For the small values of
bsread channels that makes a call many times slower (threads are woken for microseconds of
work; under load they wait for a core), and a receiver that decodes in several threads
already keeps the cores busy.
So mflow runs bitshuffle on one thread per calling thread by default;
`set_decoder_threads` gives a single decoding thread more cores for large images.

OpenMP keeps the setting per thread, so it is applied in each thread before its first
call (`apply`, a cheap check afterwards).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import bitshuffle

__all__ = ["set_decoder_threads", "decoder_threads", "apply"]

_settings = {"threads": 1, "generation": 0}
_applied = threading.local()


def _load_openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime bitshuffle's extension is linked with (its wheel ships one)."""
    folder = os.path.join(os.path.dirname(os.path.dirname(bitshuffle.__file__)), "bitshuffle.libs")
    for path in glob.glob(os.path.join(folder, "libgomp*")) + ["libgomp.so.1"]:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        library.omp_set_num_threads.argtypes = [ctypes.c_int]
        return library
    return None  # a build without OpenMP: nothing to set


_openmp = _load_openmp()


def set_decoder_threads(threads: int) -> None:
    """Run each bitshuffle call on up to ``threads`` threads (1, the default, is best for
    small values and for programs that decode in several threads)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    _settings["threads"] = threads
    _settings["generation"] += 1


def decoder_threads() -> int:
    """The threads each bitshuffle call may use."""
    return _settings["threads"]


def apply() -> None:
    """Apply the setting in the calling thread, if it was not yet (before a codec call)."""
    generation = _settings["generation"]
    if getattr(_applied, "generation", None) != generation:
        if _openmp is not None:
            _openmp.omp_set_num_threads(_settings["threads"])
        _applied.generation = generation
