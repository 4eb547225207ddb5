"""Fixtures: the real photos, one loaded engine, and a real server on an ephemeral port."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer, create_server
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACESVC_FACES_DIR", ROOT.parent / "shared" / "faces"))
CELEBS = FACES / "celebs"
YALE = FACES / "yale"
ORL = FACES / "orl"

PAD = FACES.parent / "pad"

if not CELEBS.is_dir():
    raise RuntimeError(f"the shared photos are missing: {FACES} (set FACESVC_FACES_DIR)")

#: The shared photos stand in for camera frames in the recognition tests, but they are
#: press photos and scans: reproductions, which the presentation-attack stage often takes
#: for prints (docs/PRESENTATION_ATTACKS.md). So every server these tests start, in
#: process or as server.py, only reports that stage unless a test asks for more;
#: tests/test_presentation_attack.py runs it enforced, and with the defaults.
PRESS_PHOTO_ATTACK_MODE = {"FACESVC_PRESENTATION_ATTACK": "report"}
os.environ.update(PRESS_PHOTO_ATTACK_MODE)


def photo(path: Path | str) -> bytes:
    return (CELEBS / path if isinstance(path, str) else path).read_bytes()


def identities(folder: Path) -> dict[str, str]:
    with (folder / "IDENTITIES.tsv").open() as handle:
        return {row[0]: row[1] for row in csv.reader(handle, delimiter="\t") if row}


def pairs(folder: Path) -> list[tuple[str, str, bool]]:
    with (folder / "PAIRS.tsv").open() as handle:
        return [(row[0], row[1], row[2] == "1") for row in csv.reader(handle, delimiter="\t") if row]


def rejection(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """The status code, ErrorInfo reason and metadata of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status in {error!r}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "facesvc"
            return error.code(), info.reason, dict(info.metadata)
    raise AssertionError(f"no ErrorInfo in {status}")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(port=0, host="127.0.0.1")


@pytest.fixture(scope="session")
def engine(settings: Settings) -> FaceEngine:
    engine = FaceEngine(settings)
    engine.load()
    return engine


def start_server(settings: Settings, engine: FaceEngine) -> FaceServer:
    face_server = create_server(settings, engine)
    face_server.server.start()
    if engine.ready:
        face_server.set_serving()
    return face_server


@pytest.fixture(scope="session")
def server(settings: Settings, engine: FaceEngine) -> Iterator[FaceServer]:
    face_server = start_server(settings, engine)
    yield face_server
    face_server.stop(None).wait()


@pytest.fixture(scope="session")
def channel(server: FaceServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        yield channel


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> pb_grpc.FaceServiceStub:
    return pb_grpc.FaceServiceStub(channel)


@pytest.fixture(scope="session")
def enrolled(stub: pb_grpc.FaceServiceStub) -> dict[str, pb.Embedding]:
    """Every labelled celebs photo enrolled once through the service."""
    result = {}
    for name in identities(CELEBS):
        try:
            response = stub.Enroll(pb.EnrollRequest(image=photo(name)), timeout=30)
        except grpc.RpcError:
            continue  # counted as an error by the accuracy tests
        result[name] = response.embedding
    return result


# ---- the real process: server.py as `make run` starts it --------------------------


def server_environment(**overrides: str) -> dict[str, str]:
    """The environment of a server.py child: no FACESVC_* of ours but `overrides`; an
    override of "" leaves that variable unset (the setting's default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESVC_")}
    env.update(
        {
            "FACESVC_PORT": "0",
            "FACESVC_HTTP_PORT": "-1",
            "FACESVC_HOST": "127.0.0.1",
            "OPENCV_LOG_LEVEL": "ERROR",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **PRESS_PHOTO_ATTACK_MODE,
        }
    )
    env.update(overrides)
    for name in [name for name, value in overrides.items() if value == ""]:
        del env[name]
    return env


def log_lines(process: subprocess.Popen[str], until: str, deadline: float) -> Iterator[dict[str, Any]]:
    """The JSON lines a server process logs on stderr, up to the one whose message is `until`."""
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            return
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        yield entry
        if entry.get("message") == until:
            return


def serving_ports(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, int | None]:
    """Read a server's log until it says "serving": its gRPC port and its metrics port."""
    entries = list(log_lines(process, "serving", time.monotonic() + timeout))
    assert entries and entries[-1]["message"] == "serving", f"the server exited with {process.wait()}"
    metrics_port = next((e["metrics_port"] for e in reversed(entries) if "metrics_port" in e), None)
    return int(entries[-1]["port"]), metrics_port


def spawn_server(started: list[subprocess.Popen[str]], **env: str) -> subprocess.Popen[str]:
    """server.py in a child process (registered in `started`, the `process` fixture)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=ROOT,
        env=server_environment(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    return proc


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[str]]]:
    """Server processes a test starts; killed, if still running, when it ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
