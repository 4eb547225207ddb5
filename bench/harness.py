"""What every benchmark shares: the service started as `make run` starts it, load drivers,
block-wise turns for side-by-side ratios, CPU and memory of the service's processes."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facesvc.v1 import face_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
CELEBS = Path(os.environ.get("FACESVC_FACES_DIR", ROOT.parent / "shared" / "faces")) / "celebs"
CORES = os.cpu_count() or 1
#: Photos of one person (id00) and two 2500 px wide photos; all within MAX_IMAGE_SIZE.
PHOTOS = ["img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg", "img10.jpg", "img11.jpg"]
WIDE = "img4.jpg"  # 2500 x 1728
CONCURRENCY = (1, 2, 4, 8)


# ---- measurement helpers --------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (via /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def peak_rss_mb(pid: int) -> dict[int, float]:
    """VmHWM (peak resident set) of each Python process in the tree, in MB."""
    result = {}
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{member}/status").read_text()
            if "python" not in Path(f"/proc/{member}/cmdline").read_text():
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    result[member] = int(line.split()[1]) / 1024
    return result


@dataclass
class Run:
    label: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / len(self.latencies) if self.latencies else float("nan")

    def row(self) -> str:
        ms = [1000 * x for x in self.latencies]
        return (
            f"| {self.label} | {self.concurrency} | {self.rps:.1f} | {percentile(ms, 50):.0f} | "
            f"{percentile(ms, 95):.0f} | {percentile(ms, 99):.0f} | {1000 * self.cpu_per_request:.0f} | {self.errors} |"
        )


def drive(
    label: str, concurrency: int, requests: int, call: Callable[[int], None], server_pid: int | None
) -> Run:
    """`requests` calls spread over `concurrency` threads; call(i) makes request i."""
    run = Run(label, concurrency)
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            started = time.perf_counter()
            try:
                call(index)
            except Exception:
                run.errors += 1
                continue
            run.latencies.append(time.perf_counter() - started)

    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - started
    run.cpu = (cpu_seconds(server_pid) - cpu_before) if server_pid else 0.0
    return run


@dataclass
class Turns:
    """Latencies of calls that took turns: for each call, its latencies round by round.
    A ratio is the median over rounds of the two calls' medians in that round, so a
    machine that drifts between rounds (this one does, by 10-15%) cancels out."""

    rounds: dict[str, list[list[float]]]

    def p50(self, label: str) -> float:
        return statistics.median([t for times in self.rounds[label] for t in times])

    def ratio(self, label: str, base: str) -> float:
        return statistics.median(
            statistics.median(a) / statistics.median(b)
            for a, b in zip(self.rounds[label], self.rounds[base], strict=True)
        )


def in_blocks(calls: dict[str, Callable[[int], object]], block: int, rounds: int) -> Turns:
    """Each call made `block` times back to back, the calls taking turns block by block
    for `rounds` rounds."""
    turns = Turns({label: [] for label in calls})
    for round_ in range(rounds):
        for label, call in calls.items():
            call(0)  # the first of a block follows another kind of call: not counted
            times = []
            for i in range(block):
                started = time.perf_counter()
                call(round_ * block + i)
                times.append(time.perf_counter() - started)
            turns.rounds[label].append(times)
    return turns


def interleaved(calls: dict[str, Callable[[int], object]], rounds: int) -> Turns:
    """The calls taking turns one call at a time: each follows ~40 ms of the others, so the
    service has been idle before every call it gets."""
    return in_blocks(calls, block=1, rounds=rounds)


# ---- the service under test ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    cold_start: float


def start_service(env: dict[str, str], timeout: float = 180) -> Service:
    """`make run` as a user types it; returns once grpc.health.v1 says SERVING."""
    port = free_port()
    # The HTTP door on a free port unless asked for one: two services side by side (the
    # full run keeps one while it starts another) would both take 8000 and the second exit.
    environment = {
        **os.environ,
        "FACESVC_HTTP_PORT": "-1",
        **env,
        "FACESVC_PORT": str(port),
        "FACESVC_HOST": "127.0.0.1",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"make run exited with {process.returncode}")
            with contextlib.suppress(grpc.RpcError):
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    service = Service(process, port, time.perf_counter() - started)
                    _STARTED.append(service)
                    return service
            time.sleep(0.01)
    process.kill()
    raise RuntimeError("service did not become SERVING")


#: Every service started, so that one a failing piece leaves running is stopped at exit.
_STARTED: list[Service] = []


@atexit.register
def _stop_leftovers() -> None:
    for service in _STARTED:
        if service.process.poll() is None:
            stop_service(service)


def stop_service(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.process.kill()


def server_pid(service: Service) -> int:
    return service.process.pid  # make; its descendants are the serving processes


# ---- requests ------------------------------------------------------------------------


def frame_640(data: bytes) -> bytes:
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    scale = 640 / max(pixels.shape[:2])
    small = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def raw_call(channel: grpc.Channel, method: str) -> Callable[[bytes], bytes]:
    """A unary call that sends pre-serialised bytes and returns the raw response."""
    return channel.unary_unary(f"/facesvc.v1.FaceService/{method}")  # type: ignore[no-any-return]


def gallery(
    template: pb.Embedding, size: int, packed: bool, half: bool = False, identities: int = 0
) -> pb.IdentifyRequest:
    """A gallery of `size` random templates and `template`; packed as float16 with `half`;
    the templates shared out among `identities` ids in turn (0: one id each)."""
    rng = np.random.default_rng(size)
    rows = rng.standard_normal((size, len(template.values))).astype("<f4")
    rows[size // 2] = np.asarray(template.values, dtype="<f4")
    ids = [f"person-{i % (identities or size)}" for i in range(size)]
    if packed:
        return pb.IdentifyRequest(
            packed_candidates=pb.PackedGallery(
                ids=ids,
                values=rows.astype("<f2" if half else "<f4").tobytes(),
                model=template.model,
                encoding=pb.PACKED_ENCODING_FLOAT16 if half else pb.PACKED_ENCODING_UNSPECIFIED,
            )
        )
    return pb.IdentifyRequest(
        candidates=[
            pb.Candidate(id=ids[i], embedding=pb.Embedding(values=rows[i].tolist(), model=template.model))
            for i in range(size)
        ]
    )


def identify_payloads(base: pb.IdentifyRequest, images: list[bytes]) -> list[bytes]:
    """`base` (a gallery) with each of `images` as the probe, serialised."""
    payloads = []
    for image in images:
        request = pb.IdentifyRequest()
        request.CopyFrom(base)
        request.image = image
        payloads.append(request.SerializeToString())
    return payloads


# ---- sealed templates -----------------------------------------------------------------------


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


class Report:
    """Lines printed as they come and kept for the results file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def write(self, output: Path) -> None:
        output.write_text("\n".join(self.lines) + "\n")
        print(f"\nwritten to {output}")


def celebs_photos() -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The benchmark's photos by name, and the same scaled to a 640 px camera frame."""
    photos = {name: (CELEBS / name).read_bytes() for name in PHOTOS}
    return photos, {name: frame_640(data) for name, data in photos.items()}
