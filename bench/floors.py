"""`python -m bench.floors`: what the libraries cost on this machine, below any facesvc code.

The two targets `make bench` misses sit on these floors:
- JPEG decoding: img4.jpg (2500 px, progressive) at libjpeg's 1/4 scale, its first (DC)
  scan alone, the same pixels as a baseline JPEG, and the 640 px copy;
- gRPC: a bare grpcio echo server in another process, called back to back and after
  40 ms of idle (what each facesvc call pays before any handler runs).
Medians of 25 calls each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures

import cv2
import grpc
import numpy as np

from bench.bench import CELEBS, WIDE, frame_640, free_port

ECHO = "/bench.Echo/Echo"


def median_ms(call: Callable[[], object], runs: int = 25, idle: float = 0.0) -> float:
    times = []
    for _ in range(runs):
        if idle:
            time.sleep(idle)
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def first_scan_only(data: bytes) -> bytes:
    """The file up to its second start-of-scan marker, then end-of-image: a progressive
    JPEG with only its DC scan."""
    first = data.index(b"\xff\xda")
    second = data.index(b"\xff\xda", first + 2)
    return data[:second] + b"\xff\xd9"


def decode_floors() -> list[tuple[str, float]]:
    photo = (CELEBS / WIDE).read_bytes()
    pixels = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    baseline = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    variants = {
        f"{WIDE} as shot (progressive), 1/4 scale": (photo, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE}, its DC scan only, 1/4 scale": (first_scan_only(photo), cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} re-encoded as baseline, 1/4 scale": (baseline, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} as a 640 px frame, full scale": (frame_640(photo), cv2.IMREAD_COLOR),
    }
    return [
        (f"decode {name}", median_ms(lambda d=data, f=flags: cv2.imdecode(np.frombuffer(d, np.uint8), f)))
        for name, (data, flags) in variants.items()
    ]


def serve_echo(port: int) -> None:
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: b"")}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def grpc_floors() -> list[tuple[str, float]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floors", "--serve-echo", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(ECHO)
            payload = bytes(50_000)  # about a 640 px JPEG
            echo(payload)
            return [
                ("bare grpcio round trip, 50 kB, back to back", median_ms(lambda: echo(payload))),
                (
                    "bare grpcio round trip, 50 kB, after 40 ms idle",
                    median_ms(lambda: echo(payload), idle=0.04),
                ),
            ]
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    if sys.argv[1:2] == ["--serve-echo"]:
        serve_echo(int(sys.argv[2]))
        return 0
    print("| floor | median ms |\n|---|---|")
    for name, ms in decode_floors() + grpc_floors():
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
