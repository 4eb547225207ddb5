"""Cross-language interop: interop/client.js (Node.js, @grpc/grpc-js + @grpc/proto-loader,
built from protos/ alone) calls Health, Enroll and Verify on a real server and checks an
ErrorInfo reason. Runs when `node` is present and interop/'s packages can be installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer
from tests.conftest import FACES, ROOT, start_server

INTEROP = ROOT / "interop"


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (INTEROP / "node_modules" / "@grpc" / "grpc-js").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed, and interop/node_modules is missing")
        try:
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=INTEROP,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm ci in interop/ timed out")
        if installed.returncode != 0:
            pytest.skip(f"npm ci in interop/ failed (offline?): {installed.stderr.strip()[-300:]}")
    return node


def test_node_client_calls_health_enroll_verify_and_reads_error_info(
    node: str, server: FaceServer, settings: Settings, engine: FaceEngine
) -> None:
    # Two replicas, as grpc-js balances them with the documented service config.
    second = start_server(settings, engine)
    try:
        done = subprocess.run(
            [node, str(INTEROP / "client.js"), f"ipv4:127.0.0.1:{server.port},127.0.0.1:{second.port}"],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ | {"FACESVC_FACES_DIR": str(FACES)},
        )
    finally:
        second.stop(None).wait()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["model"], report["embedding_dim"]) == ("SFace", 128)
    assert report["load_balancing"] == [{"round_robin": {}}]
    assert report["retry_policy"]["retryableStatusCodes"] == ["UNAVAILABLE", "CANCELLED"]
    assert report["genuine"]["match"] and not report["impostor"]["match"]
    assert [(r["domain"], r["reason"]) for r in report["refusals"]] == [
        ("facesvc", "MULTIPLE_FACES"),
        ("facesvc", "EMBEDDING_MODEL_MISMATCH"),
    ]
