"""`make bench`: facesvc measured against its own engine and against DeepFace's REST API.

One run on this machine, every figure side by side:
- the service started as a user starts it (`make run`), cold start to SERVING;
- the engine alone, in this process, on the same images: the baseline;
- Enroll, Verify and Identify (1, 1,000 and 10,000 candidates) at concurrency 1, 2, 4
  and 8, on real photos from ../shared/faces/celebs (465-2500 px) and on the same
  photos scaled to a 640 px camera frame;
- DeepFace's own REST API (deepface.api under gunicorn, one worker per core) with the
  same model and detector (Dlib + dlib) against facesvc configured the same way;
- Identify with 10,000 sealed templates against 10,000 plain ones (a service with a key
  ring in mode `both`); `--only sealed` runs this piece alone (bench/SEALED.md).
Writes bench/RESULTS.md. Requests are serialised before the clock starts and responses
are not parsed inside it, so the load generator's own cost stays out of the figures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import accuracy, minimal_server, presentation_attack
from bench import liveness as liveness_bench
from facesvc.config import Settings
from facesvc.engine import FaceEngine, StoredEmbedding
from facesvc.engine.templates import KeyRing
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
    environment = {**os.environ, **env, "FACESVC_PORT": str(port), "FACESVC_HOST": "127.0.0.1"}
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
                    return Service(process, port, time.perf_counter() - started)
            time.sleep(0.01)
    process.kill()
    raise RuntimeError("service did not become SERVING")


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


def gallery(template: pb.Embedding, size: int, packed: bool) -> pb.IdentifyRequest:
    rng = np.random.default_rng(size)
    rows = rng.standard_normal((size, len(template.values))).astype("<f4")
    rows[size // 2] = np.asarray(template.values, dtype="<f4")
    ids = [f"person-{i}" for i in range(size)]
    if packed:
        return pb.IdentifyRequest(
            packed_candidates=pb.PackedGallery(ids=ids, values=rows.tobytes(), model=template.model)
        )
    return pb.IdentifyRequest(
        candidates=[
            pb.Candidate(id=ids[i], embedding=pb.Embedding(values=rows[i].tolist(), model=template.model))
            for i in range(size)
        ]
    )


# ---- sealed templates -----------------------------------------------------------------------


def sealed_identify(
    photos: dict[str, bytes], frames: dict[str, bytes], rounds: int
) -> list[tuple[str, float, str, bool]]:
    """Identify with 10,000 sealed templates (one sealed gallery made by Reseal with ids; a
    SealedGallery of 10,000 blobs; sealed Candidate messages) against the same 10,000 rows
    plain and packed, on one service in mode `both`, taking turns in blocks of 4 as the
    other ratios do. The rows are sealed here with the service's own key ring, as Enroll or
    Reseal would have sealed them."""
    targets = []
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder) / "template-keys"
        keys.write_text(KeyRing.generate_line("bench") + "\n")
        keys.chmod(0o600)
        ring = KeyRing.load(keys)
        service = start_service({"FACESVC_TEMPLATE_KEYS_FILE": str(keys), "FACESVC_TEMPLATES": "both"})
        try:
            with grpc.insecure_channel(
                f"127.0.0.1:{service.port}",
                options=[
                    ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.max_receive_message_length", 64 << 20),
                ],
            ) as channel:
                enroll, verify, identify = (raw_call(channel, m) for m in ("Enroll", "Verify", "Identify"))
                sealed = pb.EnrollResponse.FromString(
                    enroll(pb.EnrollRequest(image=photos["img1.jpg"]).SerializeToString())
                ).embedding
                values = ring.open(sealed.sealed).values
                plain = pb.Embedding(values=values.tolist(), model=sealed.model)
                packed = gallery(plain, 10_000, packed=True)
                rows = np.frombuffer(packed.packed_candidates.values, "<f4").reshape(10_000, -1)
                blobs = [ring.seal(row, sealed.model) for row in rows]
                ids = list(packed.packed_candidates.ids)
                reseal = raw_call(channel, "Reseal")
                whole = pb.ResealResponse.FromString(
                    reseal(
                        pb.ResealRequest(
                            templates=[pb.Embedding(sealed=b, model=sealed.model) for b in blobs], ids=ids
                        ).SerializeToString()
                    )
                ).packed_gallery
                bases = {
                    "Verify": None,
                    "plain packed": packed,
                    "sealed gallery": pb.IdentifyRequest(sealed_candidates=pb.SealedGallery(packed=[whole])),
                    "sealed": pb.IdentifyRequest(
                        sealed_candidates=pb.SealedGallery(ids=ids, templates=blobs)
                    ),
                    "sealed Candidates": pb.IdentifyRequest(
                        candidates=[
                            pb.Candidate(
                                id=i, embedding=pb.Embedding(sealed=b, model=sealed.model, key_id="bench")
                            )
                            for i, b in zip(ids, blobs, strict=True)
                        ]
                    ),
                }
                for set_name, images in (("photos", list(photos.values())), ("640px", list(frames.values()))):
                    payloads: dict[str, list[bytes]] = {}
                    for label, base in bases.items():
                        payloads[label] = []
                        for image in images:
                            if base is None:
                                message = pb.VerifyRequest(image=image, stored_embeddings=[sealed])
                            else:
                                message = pb.IdentifyRequest()
                                message.CopyFrom(base)
                                message.image = image
                            payloads[label].append(message.SerializeToString())
                    for label, data in payloads.items():  # each answers, and alike
                        call = verify if label == "Verify" else identify
                        call(data[0])
                    answers = {
                        label: pb.IdentifyResponse.FromString(identify(payloads[label][0])).matches[0].id
                        for label in ("plain packed", "sealed gallery", "sealed", "sealed Candidates")
                    }
                    assert len(set(answers.values())) == 1, answers
                    turns = in_blocks(
                        {
                            label: (
                                lambda i, c=(verify if label == "Verify" else identify), p=data: c(
                                    p[i % len(p)]
                                )
                            )
                            for label, data in payloads.items()
                        },
                        block=4,
                        rounds=rounds,
                    )
                    plain_ms = 1000 * turns.p50("plain packed")
                    for label, goal in (
                        ("sealed gallery", "<= 1.2"),
                        ("sealed", "<= 1.2"),
                        ("sealed Candidates", "(report)"),
                    ):
                        ratio = turns.ratio(label, "plain packed")
                        targets.append(
                            (
                                f"Identify 10,000 {label} ({1000 * turns.p50(label):.0f} ms) / 10,000 plain packed "
                                f"({plain_ms:.0f} ms), same photos ({set_name})",
                                ratio,
                                goal,
                                ratio <= 1.2 or goal == "(report)",
                            )
                        )
                    targets.append(
                        (
                            f"Identify 10,000 plain packed / Verify of one sealed template ({set_name}; "
                            f"Verify {1000 * turns.p50('Verify'):.0f} ms)",
                            turns.ratio("plain packed", "Verify"),
                            "(report)",
                            True,
                        )
                    )
        finally:
            stop_service(service)
    return targets


# ---- the libraries' floors ----------------------------------------------------------------


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


def floors() -> list[tuple[str, float]]:
    """What the libraries cost here below any facesvc code, medians of 25 calls: libjpeg
    decoding img4.jpg (progressive) at 1/4 scale, its DC scan alone, the same pixels as a
    baseline JPEG and as a 640 px frame; a bare grpcio round trip back to back and after
    40 ms of idle (what each facesvc call pays before any handler runs)."""
    photo = (CELEBS / WIDE).read_bytes()
    pixels = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    baseline = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    variants = {
        f"{WIDE} as shot (progressive), 1/4 scale": (photo, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE}, its DC scan only, 1/4 scale": (first_scan_only(photo), cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} re-encoded as baseline, 1/4 scale": (baseline, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} as a 640 px frame, full scale": (frame_640(photo), cv2.IMREAD_COLOR),
    }
    result = [
        (f"decode {name}", median_ms(lambda d=data, f=flags: cv2.imdecode(np.frombuffer(d, np.uint8), f)))
        for name, (data, flags) in variants.items()
    ]
    with minimal_server.running(engine=False) as channel:
        echo = channel.unary_unary(minimal_server.ECHO)
        payload = bytes(50_000)  # about a 640 px JPEG
        echo(payload)
        result.append(("bare grpcio round trip, 50 kB, back to back", median_ms(lambda: echo(payload))))
        result.append(
            ("bare grpcio round trip, 50 kB, after 40 ms idle", median_ms(lambda: echo(payload), idle=0.04))
        )
    return result


# ---- DeepFace's REST API ----------------------------------------------------------------


@contextlib.contextmanager
def deepface_rest() -> Iterator[int]:
    """deepface.api under gunicorn, one worker per core, Dlib + dlib preloaded. Its weights
    are the very files face-recognition-models ships (DeepFace would download them)."""
    from facesvc.engine import weights

    home = Path(tempfile.mkdtemp(prefix="bench-deepface-"))
    weights_dir = home / ".deepface" / "weights"
    weights_dir.mkdir(parents=True)
    for name in (weights.DLIB_RESNET_FILE, weights.DLIB_SHAPE_5_FILE):
        (weights_dir / name).symlink_to(weights.dlib_model(name))
    port = free_port()
    env = {
        **os.environ,
        "DEEPFACE_HOME": str(home),
        "DEEPFACE_FACE_RECOGNITION_MODELS": "Dlib",
        "DEEPFACE_FACE_DETECTION_MODELS": "dlib",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [
            str(gunicorn),
            "--workers",
            str(CORES),
            "--timeout",
            "600",
            "--bind",
            f"127.0.0.1:{port}",
            "deepface.api.src.app:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("DeepFace REST API did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def rest_post(port: int, path: str, body: bytes) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {payload[:200]!r}")


def data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


# ---- the benchmark ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="facesvc benchmark")
    parser.add_argument("--requests", type=int, default=16, help="requests per thread for each load")
    parser.add_argument("--skip-deepface", action="store_true", help="leave out DeepFace's REST API")
    parser.add_argument(
        "--output", type=Path, default=None, help="default bench/RESULTS.md (bench/SEALED.md)"
    )
    parser.add_argument(
        "--only",
        choices=["sealed", "accuracy", "liveness"],
        help="run one piece alone: sealed (Identify with sealed templates, bench/SEALED.md), accuracy "
        "(24 MP photo, fused model) or liveness (concurrent sessions), printed; RESULTS.md is left as is",
    )
    args = parser.parse_args(argv)
    if args.only == "liveness":
        return liveness_bench.main([])
    per_thread = args.requests
    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    photos = {name: (CELEBS / name).read_bytes() for name in PHOTOS}

    def accuracy_piece(target: Callable[[str, float, str, bool], None]) -> None:
        accuracy.run(out, target, photos, WIDE, per_thread)

    frames = {name: frame_640(data) for name, data in photos.items()}
    sets = {"photos": list(photos.values()), "640px": list(frames.values())}
    if args.only == "sealed":
        output = args.output or ROOT / "bench" / "SEALED.md"
        out("# facesvc benchmark: sealed templates")
        out()
        out(
            f"Command: `make bench BENCH_ARGS='--only sealed'`. Machine: {CORES} cores, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Concurrency 1, the variants taking turns "
            f"in blocks of 4 calls for {per_thread} rounds; each ratio the median of the per-round ratios."
        )
        out()
        out("| figure | measured | target | met |")
        out("|---|---|---|---|")
        for name, value, goal, ok in sealed_identify(photos, frames, per_thread):
            out(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
        output.write_text("\n".join(lines) + "\n")
        print(f"\nwritten to {output}")
        return 0
    args.output = args.output or ROOT / "bench" / "RESULTS.md"

    # The celebs photos are press photos, which the presentation-attack stage often takes
    # for prints: the service and the engine below run it in REPORT (the same work as an
    # enforced pass); its own cost is measured apart (bench/presentation_attack.py).
    os.environ["FACESVC_PRESENTATION_ATTACK"] = "report"
    if args.only == "accuracy":
        accuracy_piece(lambda name, value, goal, ok: out(f"| {name} | {value:.2f} | {goal} | {ok} |"))
        return 0
    # Cold start, three times, through `make run`.
    colds = []
    for _ in range(3):
        service = start_service({})
        colds.append(service.cold_start)
        stop_service(service)
    service = start_service({})
    pid = server_pid(service)
    targets: list[tuple[str, float, str, bool]] = []

    out("# facesvc benchmark results")
    out()
    out(
        f"Command: `make bench`. Machine: {CORES} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )
    out(
        "Latencies in ms (p50/p95/p99), throughput in requests/s, CPU = CPU-ms the service spent per request "
        "(all its processes). Medians of the run; the machine is noisy."
    )
    out()

    # Engine alone, in this process: the baseline. Measured interleaved with the same
    # call through gRPC (one engine call, one RPC, ...), so both see the same machine.
    engine = FaceEngine(Settings())
    engine.load()
    template = StoredEmbedding(engine.analyse(photos["img1.jpg"]).embedding, "SFace")

    with grpc.insecure_channel(
        f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        enroll, verify, identify = (raw_call(channel, m) for m in ("Enroll", "Verify", "Identify"))
        stored = pb.EnrollResponse.FromString(
            enroll(pb.EnrollRequest(image=photos["img1.jpg"]).SerializeToString())
        ).embedding
        # The floor: the same engine behind the least server grpcio allows.
        overhead: dict[str, dict[str, Turns]] = {}
        with minimal_server.running(engine=True) as minimal:
            minimal_verify = minimal.unary_unary(minimal_server.VERIFY)
            for set_name, images in sets.items():
                payloads = [
                    pb.VerifyRequest(image=i, stored_embeddings=[stored]).SerializeToString() for i in images
                ]
                calls: dict[str, Callable[[int], object]] = {
                    "engine": lambda i, images=images, engine=engine: engine.verify(
                        images[i % len(images)], [template]
                    ),
                    "facesvc": lambda i, payloads=payloads: verify(payloads[i % len(payloads)]),
                    "minimal": lambda i, payloads=payloads: minimal_verify(payloads[i % len(payloads)]),
                }
                overhead[set_name] = {
                    # A client calling one after another (the concurrency-1 load), the three
                    # taking turns in blocks of 4 so that all see the same machine.
                    "back to back": in_blocks(calls, block=4, rounds=per_thread),
                    # Each call after the others' ~40 ms: the service has been idle.
                    "after idle": interleaved(calls, per_thread * 3),
                }
        del engine
        runs: dict[tuple[str, str, int], Run] = {}
        sent: dict[tuple[str, str], tuple[Callable[[bytes], bytes], list[bytes]]] = {}
        out("## facesvc, default model (SFace + YuNet), through gRPC")
        out()
        out("| RPC | concurrency | req/s | p50 | p95 | p99 | CPU ms/req | errors |")
        out("|---|---|---|---|---|---|---|---|")
        galleries = {
            "Identify 1": gallery(stored, 1, packed=False),
            "Identify 1,000": gallery(stored, 1000, packed=False),
            "Identify 10,000": gallery(stored, 10_000, packed=False),
            "Identify 1,000 packed": gallery(stored, 1000, packed=True),
            "Identify 10,000 packed": gallery(stored, 10_000, packed=True),
        }
        for set_name, images in sets.items():
            requests: dict[str, list[bytes]] = {
                "Enroll": [pb.EnrollRequest(image=image).SerializeToString() for image in images],
                "Verify": [
                    pb.VerifyRequest(image=image, stored_embeddings=[stored]).SerializeToString()
                    for image in images
                ],
            }
            for label, base in galleries.items():
                requests[label] = []
                for image in images:
                    request = pb.IdentifyRequest()
                    request.CopyFrom(base)
                    request.image = image
                    requests[label].append(request.SerializeToString())
            for label, payloads in requests.items():
                call = enroll if label == "Enroll" else verify if label == "Verify" else identify
                sent[(label, set_name)] = (call, payloads)
                for concurrency in CONCURRENCY:
                    if label.startswith(("Identify 1,000", "Identify 10,000")) and concurrency not in (1, 4):
                        continue
                    run = drive(
                        f"{label} ({set_name})",
                        concurrency,
                        per_thread * concurrency,
                        lambda i, payloads=payloads, call=call: call(payloads[i % len(payloads)]),
                        pid,
                    )
                    runs[(label, set_name, concurrency)] = run
                    out(run.row())
        rss = peak_rss_mb(pid)
        # Ratios of latencies at concurrency 1 are measured in blocks taking turns (4 a, 4 b,
        # 4 c, 4 a, ...), so that every variant sees the same machine while each is a
        # stream of calls as one client makes them; the tables above ran apart. (Strictly
        # alternating single calls was tried first: a call then pays for the one before it,
        # e.g. a Verify right after a 5 MB Identify, which flattered the Identify ratios.)
        # The same 2500 px pixels re-encoded as a baseline JPEG: the celebs files are
        # progressive, which libjpeg cannot decode at reduced scale for much less.
        baseline = cv2.imencode(
            ".jpg",
            cv2.imdecode(np.frombuffer(photos[WIDE], np.uint8), cv2.IMREAD_COLOR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )[1].tobytes()
        wide_payloads = {
            size: pb.VerifyRequest(image=image, stored_embeddings=[stored]).SerializeToString()
            for size, image in (("photo", photos[WIDE]), ("baseline", baseline), ("frame", frames[WIDE]))
        }
        wide = in_blocks(
            {size: (lambda _i, p=p: verify(p)) for size, p in wide_payloads.items()},
            block=4,
            rounds=per_thread,
        )
        # The share of the machine that load reaches: CPU per request at concurrency 1 and
        # throughput at 4, measured in turns (three pairs of longer runs than the table's),
        # the median of the three pairs' shares.
        shares: dict[str, float] = {}
        for set_name in sets:
            call, payloads = sent[("Verify", set_name)]
            pairs_ = [
                (
                    drive("", 1, per_thread * 2, lambda i, p=payloads, c=call: c(p[i % len(p)]), pid),
                    drive("", 4, per_thread * 8, lambda i, p=payloads, c=call: c(p[i % len(p)]), pid),
                )
                for _ in range(3)
            ]
            shares[set_name] = statistics.median(c4.rps * c1.cpu_per_request / CORES for c1, c4 in pairs_)
        paired: dict[str, Turns] = {}
        for set_name in sets:
            labels = (
                "Verify",
                "Identify 1,000 packed",
                "Identify 10,000 packed",
                "Identify 1,000",
                "Identify 10,000",
            )
            paired[set_name] = in_blocks(
                {label: (lambda i, c=sent[(label, set_name)]: c[0](c[1][i % len(c[1])])) for label in labels},
                block=4,
                rounds=per_thread,
            )

    out()
    out(
        f"Cold start, `make run` to SERVING (installed, nothing changed): {', '.join(f'{c:.2f}' for c in colds)} s."
    )
    out(f"Peak RSS per serving process after the load: {', '.join(f'{v:.0f} MB' for v in rss.values())}.")
    out()

    def target(name: str, value: float, goal: str, ok: bool) -> None:
        targets.append((name, value, goal, ok))

    for set_name in sets:
        for mode, measured in overhead[set_name].items():
            ours, floor, alone = (measured.p50(label) for label in ("facesvc", "minimal", "engine"))
            ratio = measured.ratio("facesvc", "engine")
            target(
                f"Verify p50 via gRPC / engine-only p50, concurrency 1, calls {mode} ({set_name}: "
                f"{1000 * ours:.1f} vs {1000 * alone:.1f} ms)",
                ratio,
                "<= 1.05" if mode == "back to back" else "(report)",
                ratio <= 1.05 or mode != "back to back",
            )
            target(
                f"the same through a minimal grpcio server, calls {mode} ({set_name}: {1000 * floor:.1f} ms; "
                "gRPC's own floor here)",
                measured.ratio("minimal", "engine"),
                "(report)",
                True,
            )

    for set_name in sets:
        share = shares[set_name]
        target(
            f"Verify throughput at concurrency 4 x CPU-s/request at 1 / cores, median of 3 pairs of runs ({set_name})",
            share,
            ">= 0.85",
            share >= 0.85,
        )
    for variant, text in (("photo", "progressive JPEG as shot"), ("baseline", "re-encoded as baseline JPEG")):
        ratio = wide.ratio(variant, "frame")
        target(
            f"latency {WIDE} (2500 px, {text}, {1000 * wide.p50(variant):.0f} ms) / its 640 px copy "
            f"({1000 * wide.p50('frame'):.0f} ms)",
            ratio,
            "<= 1.3",
            ratio <= 1.3,
        )
    for set_name in sets:
        for label, goal in (
            ("Identify 1,000 packed", 1.1),
            ("Identify 10,000 packed", 1.5),
            ("Identify 1,000", 1.1),
            ("Identify 10,000", 1.5),
        ):
            ratio = paired[set_name].ratio(label, "Verify")
            target(f"{label} / Verify, same photos ({set_name})", ratio, f"<= {goal}", ratio <= goal)
    for label, ratio, on, off in presentation_attack.measure(per_thread):
        target(
            f"Verify with the presentation-attack stage / without it, same images ({label}: "
            f"{1000 * on:.1f} vs {1000 * off:.1f} ms)",
            ratio,
            "<= 1.15",
            ratio <= 1.15,
        )
    cold = statistics.median(colds)
    target("cold start to SERVING, default model, `make run` (s)", cold, "<= 5", cold <= 5)
    peak = max(rss.values())
    target("peak RSS per serving process under load (MB)", peak, "<= 600", peak <= 600)
    stop_service(service)
    targets.extend(sealed_identify(photos, frames, per_thread))

    if not args.skip_deepface:
        out("## Against DeepFace's REST API, same model and detector (Dlib + dlib), concurrency 4")
        out()
        out("| service | call | concurrency | req/s | p50 | p95 | p99 | CPU ms/req | errors |")
        out("|---|---|---|---|---|---|---|---|---|")
        images = sets["photos"]
        requests_n = per_thread * 4 // 2
        with deepface_rest() as port:
            bodies = [
                json.dumps({"img": data_uri(i), "model_name": "Dlib", "detector_backend": "dlib"}).encode()
                for i in images
            ]
            pairs = [
                json.dumps(
                    {
                        "img1": data_uri(a),
                        "img2": data_uri(b),
                        "model_name": "Dlib",
                        "detector_backend": "dlib",
                    }
                ).encode()
                for a, b in zip(images, images[1:] + images[:1], strict=True)
            ]
            rest_post(port, "/represent", bodies[0])  # first call pays lazy loading, as ours pays warm-up
            df_represent = drive(
                "DeepFace /represent",
                4,
                requests_n,
                lambda i: rest_post(port, "/represent", bodies[i % len(bodies)]),
                None,
            )
            df_verify = drive(
                "DeepFace /verify",
                4,
                max(8, requests_n // 2),  # each /verify detects and embeds two photos
                lambda i: rest_post(port, "/verify", pairs[i % len(pairs)]),
                None,
            )
        dlib_service = start_service({"FACESVC_MODEL": "Dlib", "FACESVC_DETECTOR": "dlib"})
        dlib_pid = server_pid(dlib_service)
        with grpc.insecure_channel(f"127.0.0.1:{dlib_service.port}") as channel:
            enroll, verify = raw_call(channel, "Enroll"), raw_call(channel, "Verify")
            dlib_template = pb.EnrollResponse.FromString(
                enroll(pb.EnrollRequest(image=images[0]).SerializeToString())
            ).embedding
            enrolls = [pb.EnrollRequest(image=i).SerializeToString() for i in images]
            verifies = [
                pb.VerifyRequest(image=i, stored_embeddings=[dlib_template]).SerializeToString()
                for i in images
            ]
            ours_enroll = drive(
                "facesvc Enroll (Dlib)",
                4,
                requests_n * 2,
                lambda i: enroll(enrolls[i % len(enrolls)]),
                dlib_pid,
            )
            ours_verify = drive(
                "facesvc Verify (Dlib)",
                4,
                requests_n * 2,
                lambda i: verify(verifies[i % len(verifies)]),
                dlib_pid,
            )
            dlib_rss = peak_rss_mb(dlib_pid)
        stop_service(dlib_service)
        default_enroll = runs[("Enroll", "photos", 4)]
        for service_name, run in (
            ("DeepFace REST", df_represent),
            ("DeepFace REST", df_verify),
            ("facesvc (Dlib)", ours_enroll),
            ("facesvc (Dlib)", ours_verify),
            ("facesvc (SFace)", default_enroll),
        ):
            out(f"| {service_name} " + run.row())
        out()
        out(
            f"facesvc Dlib: {dlib_service.cold_start:.1f} s to SERVING; peak RSS per process "
            f"{', '.join(f'{v:.0f} MB' for v in dlib_rss.values())}."
        )
        out()
        target(
            "our Enroll / DeepFace /represent, both Dlib, concurrency 4",
            ours_enroll.rps / df_represent.rps,
            ">= 5.0",
            ours_enroll.rps / df_represent.rps >= 5,
        )
        target(
            "our Verify / DeepFace /verify, both Dlib, concurrency 4",
            ours_verify.rps / df_verify.rps,
            "(report)",
            True,
        )
        target(
            "our default model (SFace + YuNet) Enroll / DeepFace /represent (Dlib)",
            default_enroll.rps / df_represent.rps,
            ">= 20",
            default_enroll.rps / df_represent.rps >= 20,
        )

    live = start_service(liveness_bench.SERVICE_ENV)
    try:
        liveness_bench.section(
            live.port, out, target, 8.0, [1, 2, 4, 6, 8], cpu=lambda: cpu_seconds(server_pid(live))
        )
    finally:
        stop_service(live)

    accuracy_piece(target)
    out()
    out("## Floors on this machine (`python -m bench.floors`)")
    out()
    out("What the libraries cost below any facesvc code; medians of 25 calls.")
    out()
    out("| floor | median ms |")
    out("|---|---|")
    for name, ms in floors():
        out(f"| {name} | {ms:.1f} |")
    out()
    out("## Targets")
    out()
    out("| figure | measured | target | met |")
    out("|---|---|---|---|")
    for name, value, goal, ok in targets:
        out(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
    args.output.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
