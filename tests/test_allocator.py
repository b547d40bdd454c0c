"""glibc's allocator set up for large message buffers by the first stream of a process.

Each case runs in a fresh interpreter, whose allocator no earlier test has moved, and asks
glibc (``mallinfo2``) whether a 16 MiB block it allocates is a mapping of its own.
"""

from __future__ import annotations

import ctypes
import json

import pytest

from mflow import _allocator

from .conftest import run_python

MAPPED_PROBE = """
import ctypes, json
import mflow

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
stream = mflow.connect("tcp://127.0.0.1:*", conn_type="bind", mode=mflow.PULL)
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
print(json.dumps({"mapped": libc.mallinfo2().hblkhd - mapped >= 16 << 20}))
stream.disconnect()
"""


def glibc_with_mallinfo2() -> bool:
    return _allocator._is_glibc() and hasattr(ctypes.CDLL(None), "mallinfo2")


needs_glibc = pytest.mark.skipif(
    not glibc_with_mallinfo2(), reason="the allocator set-up is glibc's (mallinfo2: glibc 2.33+)"
)


def large_block_is_mapped(monkeypatch: pytest.MonkeyPatch, **environment: str) -> bool:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(_allocator.OPT_OUT, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    child = run_python(MAPPED_PROBE)
    assert child.returncode == 0, child.stderr
    return bool(json.loads(child.stdout.splitlines()[-1])["mapped"])


@needs_glibc
def test_after_a_connect_a_large_block_comes_from_the_heap(monkeypatch: pytest.MonkeyPatch):
    assert not large_block_is_mapped(monkeypatch)


@needs_glibc
def test_the_opt_out_leaves_glibc_mapping_large_blocks(monkeypatch: pytest.MonkeyPatch):
    assert large_block_is_mapped(monkeypatch, MFLOW_MALLOC_DEFAULTS="1")


@needs_glibc
def test_a_threshold_the_user_set_wins(monkeypatch: pytest.MonkeyPatch):
    assert large_block_is_mapped(monkeypatch, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))


def test_off_glibc_nothing_is_done(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_allocator, "_is_glibc", lambda: False)
    monkeypatch.delenv(_allocator.OPT_OUT, raising=False)
    _allocator.prepare_for_large_messages.cache_clear()
    try:
        assert _allocator.prepare_for_large_messages() is False
    finally:
        _allocator.prepare_for_large_messages.cache_clear()


@pytest.mark.parametrize("value, opted_out", [("", False), ("0", False), ("1", True)])
def test_the_opt_out_variable(monkeypatch: pytest.MonkeyPatch, value: str, opted_out: bool):
    monkeypatch.setenv(_allocator.OPT_OUT, value)
    assert _allocator._opted_out() is opted_out


@needs_glibc
def test_on_glibc_the_block_is_allocated_and_freed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(_allocator.OPT_OUT, raising=False)
    _allocator.prepare_for_large_messages.cache_clear()
    assert _allocator.prepare_for_large_messages() is True
