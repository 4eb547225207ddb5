"""The serving process's malloc arenas (facesvc.allocator): capped at two per core unless the
operator set MALLOC_ARENA_MAX; what the cap saves is measured in `make bench` (allocator)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import ROOT, photo, serving_ports, spawn_server

GLIBC = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="glibc's allocator")
HEAP = 64 << 20

#: 32 threads alive at once, each allocating (a new thread takes an arena of its own while
#: there are fewer than the cap), then glibc's malloc_stats, which prints one "Arena N:" each.
PROGRAM = """
import ctypes, sys, threading
from facesvc import allocator
print(allocator.cap_arenas(), flush=True)
barrier = threading.Barrier(32)
def work():
    barrier.wait()
    blocks = [bytearray(200_000) for _ in range(20)]  # glibc's malloc, not Python's small-object pool
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(32)]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(env: dict[str, str]) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr.count("Arena ")


@GLIBC
def test_arenas_are_capped_at_two_per_core_unless_the_operator_sets_malloc_arena_max() -> None:
    cores = os.cpu_count() or 1
    cap, count = arenas({})
    assert cap == str(2 * cores)
    assert 1 <= count <= 2 * cores
    # The operator's setting is glibc's own, left as it is: here more arenas than the cap.
    wide = max(8, 4 * cores)
    cap, count = arenas({"MALLOC_ARENA_MAX": str(wide)})
    assert cap == "None"
    assert 2 * cores < count <= wide


def arenas_of(pid: int) -> int:
    """glibc's arenas besides the main one in a live process. Each lives in 64 MB-aligned
    anonymous reservations of 64 MB (HEAP_MAX_SIZE; an arena that outgrows one takes
    another), the used part read-write; each such heap begins with a pointer to its arena,
    which sits in the arena's first heap, just after that pointer."""
    rows = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        rows.append((start, end, fields[1], len(fields) > 5))
    owners = set()  # one per arena
    with open(f"/proc/{pid}/mem", "rb") as memory:  # a child of this process: readable
        for i, (start, end, mode, named) in enumerate(rows):
            if named or mode != "rw-p" or start % HEAP:
                continue
            if (
                i + 1 < len(rows)
                and rows[i + 1][0] == end
                and rows[i + 1][2] == "---p"
                and not rows[i + 1][3]
            ):
                end = rows[i + 1][1]
            if end - start == HEAP:
                memory.seek(start)
                owner = int.from_bytes(memory.read(8), sys.byteorder)
                if start < owner < start + HEAP:  # an arena's first heap holds the arena itself
                    owners.add(owner)
    return len(owners)


@GLIBC
@pytest.mark.parametrize("operator", [None, "16"])
def test_the_served_process_keeps_to_the_cap_under_concurrent_calls(
    operator: str | None, process: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """server.py as `make run` starts it, 8 Enrolls at a time: its gRPC and engine threads
    share two arenas per core; with the operator's MALLOC_ARENA_MAX=16 they spread wider."""
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    server = spawn_server(process, **({} if operator is None else {"MALLOC_ARENA_MAX": operator}))
    port, _ = serving_ports(server)
    photos = [photo(f"img{i}.jpg") for i in (1, 2, 4, 5, 6, 7, 10, 11)]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(lambda i: stub.Enroll(pb.EnrollRequest(image=photos[i % 8]), timeout=60), range(64))
            )
    assert all(reply.embedding.values for reply in replies)
    cap = 2 * (os.cpu_count() or 1)
    if operator is None:
        assert arenas_of(server.pid) <= cap - 1  # the main arena is not one of these
    else:
        assert cap - 1 < arenas_of(server.pid) <= int(operator) - 1
