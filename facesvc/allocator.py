"""glibc's malloc arenas, capped for a threaded server.

glibc gives a threaded process up to 8 malloc arenas per core, and memory freed in one arena
is not reused by another; with gRPC's and the engine's threads each handling megabytes of
request and tensors, that keeps the serving process's high-water mark about 100 MB above
what it needs. Two per core take that back at no measured cost in throughput
(`make bench BENCH_ARGS="--only allocator"`, docs/PERFORMANCE.md). An operator's own
`MALLOC_ARENA_MAX`, which glibc reads itself, is left as it is.
"""

from __future__ import annotations

import ctypes
import os

ARENAS_PER_CORE = 2
_M_ARENA_MAX = -8  # malloc.h's M_ARENA_MAX


def cap_arenas(per_core: int = ARENAS_PER_CORE) -> int | None:
    """Cap this process's (and its forked workers') malloc arenas at `per_core` per core; the
    cap set, or None where nothing was set: MALLOC_ARENA_MAX given, or not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return None
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if not hasattr(libc, "gnu_get_libc_version"):  # musl, macOS: other allocators
        return None
    arenas = per_core * (os.cpu_count() or 1)
    return arenas if libc.mallopt(_M_ARENA_MAX, arenas) == 1 else None
