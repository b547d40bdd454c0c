"""`FramePool`: a bounded set of reusable output arrays for decoded images.

Decoding a large image into a new array costs more than the decoding alone: memory above
malloc's mmap threshold comes fresh from the kernel for every frame, and the kernel zeroes
each new page on first touch. A stream with a pool (``connect(..., decode_pool=N)``)
decodes its images into one of at most ``N`` buffers that are used again and again, so a
steady stream touches no new page.

A pooled image is an ordinary numpy array whose ``base`` is a pool-owned buffer; the buffer
goes back to the pool when the last array using it (the image, or any view of it) is
dropped, never before: a frame still referenced is never handed out again. When all ``N``
buffers are in use the image is decoded into a new array instead, and counted in
`FramePool.fresh`; keep ``N`` above the number of images held at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["FramePool"]


class _Frame:
    """The owner of a leased buffer: numpy arrays made from it keep it alive as their
    ``base``; when the last one goes, the buffer returns to its pool."""

    __slots__ = ("__array_interface__", "_storage", "_pool")

    def __init__(self, pool: FramePool, storage: np.ndarray) -> None:
        self._storage = storage
        self._pool = pool
        self.__array_interface__ = storage.__array_interface__

    def __del__(self) -> None:
        self._pool._give_back(self._storage)


class FramePool:
    """At most ``size`` reusable buffers that decoders write images into (module docstring).

    Buffers are made on demand, one per image size in use; safe to use from several threads.
    """

    def __init__(self, size: int) -> None:
        if type(size) is not int or size < 1:
            raise ValueError(f"a frame pool holds at least 1 frame, not {size!r}")
        #: The most buffers the pool owns (in use or free).
        self.size = size
        #: Buffers made so far (each page-faults once, on its first image).
        self.allocated = 0
        #: Images decoded into a buffer used before.
        self.reused = 0
        #: Images decoded into a new array because every buffer was in use.
        self.fresh = 0
        self._owned = 0
        self._free: dict[int, list[np.ndarray]] = {}
        # Re-entrant: a dropped frame may return (``__del__``) while the pool holds the lock.
        self._lock = threading.RLock()

    @property
    def in_use(self) -> int:
        """Buffers held by arrays right now."""
        with self._lock:
            return self._owned - sum(map(len, self._free.values()))

    def acquire(self, dtype: DTypeLike, shape: int | Sequence[int]) -> np.ndarray:
        """An uninitialised C-contiguous array of ``dtype`` and ``shape``: a pooled buffer
        when one is free (or may still be made), else a new array (counted in `fresh`)."""
        dt = np.dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = math.prod(dims) * dt.itemsize
        if nbytes == 0:
            return np.empty(dims, dt)
        storage = None
        with self._lock:
            free = self._free.get(nbytes)
            if free:
                storage = free.pop()
                self.reused += 1
            elif self._owned < self.size:
                self._owned += 1
                self.allocated += 1
            elif self._evict_one():
                self.allocated += 1
            else:
                self.fresh += 1
                return np.empty(dims, dt)
        if storage is None:
            storage = np.empty(nbytes, np.uint8)
        return np.asarray(_Frame(self, storage)).view(dt).reshape(dims)

    def _evict_one(self) -> bool:
        """Drop a free buffer of another size to make room for a new one."""
        for free in self._free.values():
            if free:
                free.pop()
                return True
        return False

    def _give_back(self, storage: np.ndarray) -> None:
        with self._lock:
            self._free.setdefault(storage.nbytes, []).append(storage)

    def __repr__(self) -> str:
        return (
            f"<mflow.FramePool size={self.size} in_use={self.in_use} "
            f"allocated={self.allocated} reused={self.reused} fresh={self.fresh}>"
        )
