"""What an operator types: grpcurl against the running service, no .proto files at hand."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facesvc.rpc.server import FaceServer
from tests.conftest import photo

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed")


def grpcurl(
    server: FaceServer, *args: str, data: dict[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(GRPCURL), "-plaintext"]
    if data is not None:
        command += ["-d", "@"]
    command += [f"127.0.0.1:{server.port}", *args]
    return subprocess.run(
        command,
        input=json.dumps(data) if data is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_and_describe_through_reflection(server: FaceServer) -> None:
    listed = grpcurl(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"facesvc.v1.FaceService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = grpcurl(server, "describe", "facesvc.v1.VerifyRequest")
    assert (
        described.returncode == 0 and "repeated .facesvc.v1.Embedding stored_embeddings" in described.stdout
    )


def test_enroll_then_verify_as_the_readme_shows(server: FaceServer) -> None:
    health = grpcurl(server, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}

    image = base64.b64encode(photo("img1.jpg")).decode()
    enrolled = grpcurl(server, "facesvc.v1.FaceService/Enroll", data={"image": image})
    assert enrolled.returncode == 0, enrolled.stderr
    embedding = json.loads(enrolled.stdout)["embedding"]
    assert embedding["model"] == "SFace" and len(embedding["values"]) == 128

    live = base64.b64encode(photo("img2.jpg")).decode()
    verified = grpcurl(
        server, "facesvc.v1.FaceService/Verify", data={"image": live, "stored_embeddings": [embedding]}
    )
    assert verified.returncode == 0, verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["match"] is True and verdict["confidence"] >= 50

    couple = base64.b64encode(photo("couple.jpg")).decode()
    refused = grpcurl(server, "facesvc.v1.FaceService/Enroll", data={"image": couple})
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr and '"reason":"MULTIPLE_FACES"' in refused.stderr
