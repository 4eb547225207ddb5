"""Enroll through the HTTP door against Enroll through gRPC (`--only http`): one service
started as `make run` starts it, the same photos at the same concurrency, the doors taking
turns round by round so that the machine's drift cancels out of the ratio.

The HTTP calls are JSON (POST /v1/faces:enroll, the image base64 in the body) and the
original design's multipart form (POST /enroll); bodies are built before the clock starts
and sent over one keep-alive connection per thread (http.client, with TCP_NODELAY as
curl and requests set it), answers not parsed.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import statistics
import threading
from collections.abc import Callable

import grpc

from bench.harness import (
    CELEBS,
    CORES,
    PHOTOS,
    Run,
    drive,
    frame_640,
    free_port,
    raw_call,
    server_pid,
    start_service,
    stop_service,
)
from facesvc.v1 import face_service_pb2 as pb

BOUNDARY = "facesvc-bench-boundary"
LEVELS = (1, 4)
ROUNDS = 3


def multipart(image: bytes) -> bytes:
    """The body `curl -F image=@photo.jpg` sends."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


class HttpCaller:
    """POSTs one prepared body per call over a keep-alive connection of the calling thread."""

    def __init__(self, port: int, path: str, content_type: str, bodies: list[bytes]) -> None:
        self._port, self._path, self._bodies = port, path, bodies
        self._headers = {"content-type": content_type}
        self._local = threading.local()

    def __call__(self, index: int) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(
                "127.0.0.1", self._port, timeout=120
            )
            connection.connect()
            # As curl, requests (urllib3) and gRPC do: without it, Nagle's algorithm holds a
            # large body's last segment until the server's delayed ACK.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.request("POST", self._path, self._bodies[index % len(self._bodies)], self._headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


def section(
    out: Callable[..., None],
    target: Callable[[str, float, str, bool], None],
    photos: dict[str, bytes],
    requests: int,
) -> None:
    """The HTTP section of bench/RESULTS.md: its own service, gRPC and HTTP on it."""
    http_port = free_port()
    service = start_service({"FACESVC_HTTP_PORT": str(http_port)})
    pid = server_pid(service)
    frames = {name: frame_640(data) for name, data in photos.items()}
    out("## HTTP against gRPC (`python -m bench.bench --only http`)")
    out()
    out(
        f"Enroll on one service, {CORES} cores: gRPC, JSON over HTTP (POST /v1/faces:enroll) and the "
        "original design's form (POST /enroll, multipart), on the same photos at the same concurrency; "
        f"the three take turns, {ROUNDS} rounds of {requests} requests per thread each. The ratio is the "
        "median over rounds of HTTP's requests/s over gRPC's in that round."
    )
    out()
    out("| images | call | concurrency | req/s | p50 ms | p95 ms | p99 ms | CPU ms/req | errors |")
    out("|---|---|---|---|---|---|---|---|---|")
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            enroll = raw_call(channel, "Enroll")
            for set_name, images in (("photos", list(photos.values())), ("640px", list(frames.values()))):
                grpc_bodies = [pb.EnrollRequest(image=image).SerializeToString() for image in images]
                json_bodies = [
                    json.dumps({"image": base64.b64encode(image).decode()}).encode() for image in images
                ]
                calls: dict[str, Callable[[int], object]] = {
                    "gRPC Enroll": lambda i, b=grpc_bodies: enroll(b[i % len(b)]),
                    "HTTP JSON /v1/faces:enroll": HttpCaller(
                        http_port, "/v1/faces:enroll", "application/json", json_bodies
                    ),
                    "HTTP form /enroll": HttpCaller(
                        http_port,
                        "/enroll",
                        f"multipart/form-data; boundary={BOUNDARY}",
                        [multipart(image) for image in images],
                    ),
                }
                for call in calls.values():  # warm: each door answers, and every connection is open
                    call(0)
                for concurrency in LEVELS:
                    runs: dict[str, list[Run]] = {label: [] for label in calls}
                    for _ in range(ROUNDS):
                        for label, call in calls.items():
                            runs[label].append(
                                drive(label, concurrency, requests * concurrency, call, pid)  # type: ignore[arg-type]
                            )
                    for label, rounds in runs.items():
                        merged = Run(label, concurrency)
                        for run in rounds:
                            merged.latencies += run.latencies
                            merged.wall += run.wall
                            merged.cpu += run.cpu
                            merged.errors += run.errors
                        out(f"| {set_name} | {merged.row()[2:]}")
                    for label in ("HTTP JSON /v1/faces:enroll", "HTTP form /enroll"):
                        ratio = statistics.median(
                            h.rps / g.rps for h, g in zip(runs[label], runs["gRPC Enroll"], strict=True)
                        )
                        target(
                            f"{label} / gRPC Enroll, {set_name}, concurrency {concurrency}",
                            ratio,
                            ">= 0.9",
                            ratio >= 0.9,
                        )
    finally:
        stop_service(service)
    out()


def main(requests: int) -> int:
    targets: list[tuple[str, float, str, bool]] = []
    photos = {name: (CELEBS / name).read_bytes() for name in PHOTOS}
    section(lambda text="": print(text, flush=True), lambda *row: targets.append(row), photos, requests)
    print("| figure | measured | target | met |")
    print("|---|---|---|---|")
    for name, value, goal, ok in targets:
        print(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
    return 0 if all(ok for *_, ok in targets) else 1
