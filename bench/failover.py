"""What a replica that stops (SIGTERM) or dies (SIGKILL) costs callers: two replicas
(server.py children), four callers enrolling real photos, one replica stopped mid-load.

    python -m bench.failover [--via sdk|proxy|both] [--seconds 12] [--runs 1]

--via sdk: the Python SDK given both targets (FaceClient([a, b])).
--via proxy: HAProxy (Debian's haproxy; deploy/haproxy/haproxy.cfg) in front of both,
callers on a plain gRPC channel to it without any retry of their own: what the proxy
alone makes of the stop. Prints, per stop: calls answered and failed, steady p99 (the
calls that ended before the stop), p99 of the calls that ended in the second after it,
and their ratio (target <= 3). `make bench` runs `--via both` (bench/full.py). Traffic
stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.harness import CELEBS, ROOT, free_port, percentile
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
CALLERS = 4
#: Small replicas: one engine slot and OpenCV thread each (two share this machine's cores),
#: no presentation-attack model; the HTTP door on, for the proxy's health check.
REPLICA_ENV = {
    "FACESVC_ENGINE_SLOTS": "1",
    "FACESVC_OPENCV_THREADS": "1",
    "FACESVC_MAX_CONCURRENT_RPCS": "8",
    "FACESVC_PRESENTATION_ATTACK": "off",
    "FACESVC_PRESENTATION_ATTACK_ENROLL": "off",
    "FACESVC_GRACE_SECONDS": "5",
    "FACESVC_LOG_LEVEL": "WARNING",
    "FACESVC_HOST": "127.0.0.1",
}


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    http_port: int


def start_replica() -> Replica:
    port, http_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FACESVC_")},
        **REPLICA_ENV,
        "FACESVC_PORT": str(port),
        "FACESVC_HTTP_PORT": str(http_port),
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    replica = Replica(process, port, http_port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if stub.Health(pb.HealthRequest(), timeout=1).status == pb.SERVING_STATUS_SERVING:
                    return replica
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("a replica did not become SERVING")


@contextmanager
def replicas() -> Iterator[tuple[Replica, Replica]]:
    started: list[Replica] = []
    try:
        started.append(start_replica())
        started.append(start_replica())
        yield started[0], started[1]
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.kill()
            replica.process.wait()


@contextmanager
def proxy(first: Replica, second: Replica, config: Path = HAPROXY_CFG) -> Iterator[int]:
    """HAProxy with `config` (deploy/haproxy/haproxy.cfg) in front of both; yields its port."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        raise RuntimeError("haproxy is not installed (apt-get install -y haproxy)")
    port = free_port()
    env = os.environ | {
        "FACESVC_PROXY_BIND": f"127.0.0.1:{port}",
        "FACESVC_R1": f"127.0.0.1:{first.port}",
        "FACESVC_R2": f"127.0.0.1:{second.port}",
        "FACESVC_R1_HTTP": str(first.http_port),
        "FACESVC_R2_HTTP": str(second.http_port),
    }
    process = subprocess.Popen(
        [haproxy, "-W", "-db", "-f", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)  # both replicas pass their first checks (rise 2, every 500 ms)
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Calls:
    """(start, end, ok) of every call, on the monotonic clock."""

    records: list[tuple[float, float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, start: float, ok: bool, error: str = "") -> None:
        with self.lock:
            self.records.append((start, time.monotonic(), ok))
            if error:
                self.errors.append(error)


def photos() -> list[bytes]:
    """The test suite's photos: the 12 smallest labelled celebs photos."""
    names = sorted(
        (p for p in CELEBS.glob("*.jpg") if p.name != "couple.jpg"), key=lambda p: p.stat().st_size
    )
    return [p.read_bytes() for p in names[:12]]


def describe(error: Exception) -> str:
    if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
        return f"{error.code().name}: {error.details()}"[:160]  # type: ignore[attr-defined]
    return f"{type(error).__name__}: {error}"[:160]


def load(
    call: Callable[[bytes], None], seconds: float, fault_at: float, fault: Callable[[], None]
) -> tuple[Calls, float]:
    """CALLERS threads calling in turn over the photos; `fault` at `fault_at` seconds."""
    calls = Calls()
    images = photos()
    stop = threading.Event()

    def caller(offset: int) -> None:
        turn = offset
        while not stop.is_set():
            image = images[turn % len(images)]
            turn += 1
            start = time.monotonic()
            try:
                call(image)
                calls.note(start, True)
            except Exception as error:  # every failure is the finding
                calls.note(start, False, describe(error))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    time.sleep(fault_at)
    faulted = time.monotonic()
    fault()
    time.sleep(seconds - fault_at)
    stop.set()
    for thread in threads:
        thread.join()
    return calls, faulted


def summary(calls: Calls, faulted: float) -> dict[str, float]:
    steady = [end - start for start, end, ok in calls.records if ok and end < faulted]
    after = [end - start for start, end, ok in calls.records if ok and faulted <= end < faulted + 1]
    steady_p99 = percentile([s * 1000 for s in steady], 99)
    after_p99 = percentile([s * 1000 for s in after], 99)
    return {
        "ok": sum(1 for *_, ok in calls.records if ok),
        "failed": sum(1 for *_, ok in calls.records if not ok),
        "steady_p99": steady_p99,
        "after_p99": after_p99,
        "ratio": after_p99 / steady_p99,
        "after_calls": len(after),
    }


def run_one(
    via: str, stop: signal.Signals, seconds: float, config: Path = HAPROXY_CFG
) -> tuple[dict[str, float], list[str]]:
    from facesvc_client import FaceClient

    with replicas() as (first, second):
        fault = lambda: first.process.send_signal(stop)  # noqa: E731
        if via == "sdk":
            with FaceClient([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"], timeout=20) as client:
                calls, faulted = load(lambda image: client.enroll(image), seconds, seconds / 2, fault)
        else:
            with proxy(first, second, config) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.FaceServiceStub(channel)
                calls, faulted = load(
                    lambda image: stub.Enroll(pb.EnrollRequest(image=image), timeout=20),
                    seconds,
                    seconds / 2,
                    fault,
                )
    return summary(calls, faulted), calls.errors


def section(
    out: Callable[..., None],
    target: Callable[[str, float, str, bool], None],
    vias: list[str],
    seconds: float,
    runs: int,
    config: Path = HAPROXY_CFG,
) -> None:
    """The failover section of bench/RESULTS.md."""
    out("## A replica stopped or killed under load (`python -m bench.failover`)")
    out()
    out(
        f"Two replicas (server.py, 1 engine slot each) on this machine, {CALLERS} callers enrolling the 12 "
        f"smallest celebs photos for {seconds:g} s; at half time one replica gets SIGTERM (a rolling update) "
        "or SIGKILL (a crash). sdk: the Python SDK given both targets; proxy: HAProxy "
        "(deploy/haproxy/haproxy.cfg) in front, callers on a plain gRPC channel with no retry of their own. "
        "p99 after: the calls that ended in the second after the stop."
    )
    out()
    out("| via | stop | run | answered | failed | steady p99 ms | p99 ms, second after | ratio |")
    out("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    if "proxy" in vias and shutil.which("haproxy") is None:
        out("(proxy left out: haproxy is not installed; `apt-get install -y haproxy`)")
        vias = [via for via in vias if via != "proxy"]
    for via in vias:
        for stop in (signal.SIGTERM, signal.SIGKILL):
            for run in range(1, runs + 1):
                figures, errors = run_one(via, stop, seconds, config)
                worst = max(worst, figures["ratio"]) if via == "sdk" else worst
                out(
                    f"| {via} | {stop.name} | {run} | {figures['ok']:.0f} | {figures['failed']:.0f} | "
                    f"{figures['steady_p99']:.0f} | {figures['after_p99']:.0f} ({figures['after_calls']:.0f} calls) | "
                    f"{figures['ratio']:.2f} |"
                )
                for error in errors[:3]:
                    out(f"|  | first failures | | {error} | | | | |")
                target(
                    f"{via}, {stop.name}: failed calls",
                    figures["failed"],
                    "0",
                    figures["failed"] == 0,
                )
    out()
    if "sdk" in vias:
        target("sdk: p99 in the second after a replica stops / steady p99", worst, "<= 3", worst <= 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--via", choices=["sdk", "proxy", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load per stop")
    parser.add_argument("--runs", type=int, default=1, help="runs per stop")
    parser.add_argument("--config", type=Path, default=HAPROXY_CFG, help="the HAProxy configuration")
    args = parser.parse_args(argv)
    vias = ["sdk", "proxy"] if args.via == "both" else [args.via]
    results: list[tuple[str, float, str, bool]] = []
    section(
        lambda text="": print(text, flush=True),
        lambda *row: results.append(row),  # type: ignore[arg-type]
        vias,
        args.seconds,
        args.runs,
        args.config,
    )
    print("| figure | measured | target | met |")
    print("|---|---|---|---|")
    for name, value, goal, ok in results:
        print(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
