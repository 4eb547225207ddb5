"""Measure what one facesvc process needs, to size Kubernetes requests and limits.

Starts `server.py` as `make run` would (FACESVC_* from the environment, so the default
SFace + YuNet unless told otherwise), sends Enroll calls with the labelled celebs photos
at a given concurrency, and reads the server's own /proc entries:

  - CPU seconds per call: user + system time of every server thread, over the calls;
  - peak RSS: the kernel's high-water mark (VmHWM) of the server process;
  - calls per second: wall-clock, so only meaningful on an otherwise idle machine.

    .venv/bin/python deploy/measure_resources.py --calls 240 --concurrency 1 2 8

It is a sizing aid, not the benchmark (`make bench`): one photo set, Enroll only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACESVC_FACES_DIR", ROOT.parent / "shared" / "faces"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime of all threads


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start_server() -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, FACESVC_PORT="0", FACESVC_HOST="127.0.0.1", OPENCV_LOG_LEVEL="ERROR")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stderr is not None
    for line in process.stderr:
        entry = json.loads(line)
        if entry.get("message") == "serving":
            # Keep reading its log (a line per call), or the pipe fills and the server blocks.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, int(entry["port"])
    raise RuntimeError(f"server exited with {process.wait()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=240, help="calls per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 8])
    arguments = parser.parse_args()
    celebs = FACES / "celebs"
    with (celebs / "IDENTITIES.tsv").open() as handle:
        photos = [(celebs / row[0]).read_bytes() for row in csv.reader(handle, delimiter="\t") if row]

    process, port = start_server()
    try:
        print(f"idle after start-up: RSS {memory_kib(process.pid, 'VmRSS') / 1024:.0f} MiB")
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            stub = pb_grpc.FaceServiceStub(channel)

            def enroll(index: int) -> bool:
                try:
                    stub.Enroll(pb.EnrollRequest(image=photos[index % len(photos)]), timeout=60)
                    return True
                except grpc.RpcError:
                    return False  # a refused photo (two of them exceed MAX_IMAGE_SIZE) still costs

            for concurrency in arguments.concurrency:
                cpu_before, started = cpu_seconds(process.pid), time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    accepted = sum(pool.map(enroll, range(arguments.calls)))
                wall = time.perf_counter() - started
                cpu = cpu_seconds(process.pid) - cpu_before
                print(
                    f"concurrency {concurrency}: {arguments.calls} calls ({accepted} accepted) in {wall:.1f} s, "
                    f"{arguments.calls / wall:.1f} calls/s, {1000 * cpu / arguments.calls:.0f} ms CPU per call, "
                    f"{cpu / wall:.2f} cores busy, peak RSS {memory_kib(process.pid, 'VmHWM') / 1024:.0f} MiB"
                )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
