"""python -m facesvc.probe: exit 0 only when the standard health check says SERVING."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import SERVICE_NAME, FaceServer
from tests.conftest import ROOT, start_server


def probe(*arguments: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESVC_")}
    if port is not None:
        env["FACESVC_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, "-m", "facesvc.probe", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serving_server_exits_0(server: FaceServer) -> None:
    for service in ("", SERVICE_NAME):
        result = probe("--target", f"127.0.0.1:{server.port}", "--service", service)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("SERVING")


def test_target_defaults_to_localhost_and_facesvc_port(server: FaceServer) -> None:
    """What the image's HEALTHCHECK relies on: FACESVC_PORT names the port."""
    result = probe(port=server.port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"localhost:{server.port} ")


def test_loading_server_exits_1() -> None:
    settings = Settings(port=0, host="127.0.0.1")
    face_server = start_server(settings, FaceEngine(settings))  # models not loaded: NOT_SERVING
    try:
        result = probe("--target", f"127.0.0.1:{face_server.port}")
        assert result.returncode == 1
        assert "NOT_SERVING" in result.stdout
    finally:
        face_server.stop(None).wait()


def test_unknown_service_exits_1(server: FaceServer) -> None:
    result = probe("--target", f"127.0.0.1:{server.port}", "--service", "no.such.Service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stdout


def test_closed_port_exits_1_at_once() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = probe("--target", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stdout
    assert time.monotonic() - started < 5


def test_bad_arguments_exit_2() -> None:
    assert probe("--timeout", "0").returncode == 2
    assert probe("--timeout", "soon").returncode == 2
