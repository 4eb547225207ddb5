"""Request logs: one JSON line per call, with a request id the caller gets back; no biometrics."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facesvc.logs import JsonFormatter
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import photo, rejection, serving_ports, spawn_server

REQUEST_ID = "x-request-id"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """facesvc's log lines as the service writes them: through JsonFormatter, on the
    thread that logs (where the request id lives)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("facesvc")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(previous)


def lines(buffer: io.StringIO, logger: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [e for e in entries if e["logger"] == logger]


def trailing_id(metadata: object) -> str:
    found = [value for key, value in metadata or () if key == REQUEST_ID]  # type: ignore[attr-defined]
    assert len(found) == 1, metadata
    return str(found[0])


def test_one_line_per_call_with_the_callers_request_id_returned(
    stub: pb_grpc.FaceServiceStub, json_log: io.StringIO
) -> None:
    response, call = stub.Enroll.with_call(
        pb.EnrollRequest(image=photo("img1.jpg")), metadata=[(REQUEST_ID, "req-42.a")], timeout=30
    )
    assert len(response.embedding.values) == 128
    assert trailing_id(call.trailing_metadata()) == "req-42.a"
    (entry,) = lines(json_log, "facesvc.requests")
    assert entry["message"] == "request" and entry["level"] == "INFO"
    assert entry["rpc"] == "facesvc.v1.FaceService/Enroll"
    assert (entry["code"], entry["reason"], entry["request_id"]) == ("OK", "", "req-42.a")
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] > 1
    assert "127.0.0.1" in str(entry["peer"])


def test_a_refused_call_gets_a_fresh_id_shared_by_its_security_line(
    stub: pb_grpc.FaceServiceStub, json_log: io.StringIO
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.Enroll(pb.EnrollRequest(image=photo("couple.jpg")), timeout=30)
    assert rejection(refused.value)[1] == "MULTIPLE_FACES"  # the ErrorInfo survives the added metadata
    request_id = trailing_id(refused.value.trailing_metadata())  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    (entry,) = lines(json_log, "facesvc.requests")
    assert (entry["code"], entry["reason"], entry["request_id"]) == (
        "INVALID_ARGUMENT",
        "MULTIPLE_FACES",
        request_id,
    )
    (security,) = lines(json_log, "facesvc.security")
    assert security["reason"] == "MULTIPLE_FACES" and security["request_id"] == request_id


@pytest.mark.parametrize("given", ["has space", "x" * 129, "-leading-dash", "semi;colon"])
def test_an_odd_request_id_is_replaced(
    given: str, stub: pb_grpc.FaceServiceStub, json_log: io.StringIO
) -> None:
    _, call = stub.Health.with_call(pb.HealthRequest(), metadata=[(REQUEST_ID, given)], timeout=5)
    returned = trailing_id(call.trailing_metadata())
    assert returned != given and re.fullmatch(r"[0-9a-f]{32}", returned)


def test_health_checks_log_at_debug_and_face_calls_at_info(
    channel: grpc.Channel, stub: pb_grpc.FaceServiceStub, json_log: io.StringIO
) -> None:
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    stub.Health(pb.HealthRequest(), timeout=5)
    levels = {e["rpc"]: e["level"] for e in lines(json_log, "facesvc.requests")}
    assert levels == {"grpc.health.v1.Health/Check": "DEBUG", "facesvc.v1.FaceService/Health": "INFO"}


def test_no_image_or_embedding_reaches_the_log(stub: pb_grpc.FaceServiceStub, json_log: io.StringIO) -> None:
    image = photo("img2.jpg")
    enrolled = stub.Enroll(pb.EnrollRequest(image=image), timeout=30).embedding
    stub.Verify(pb.VerifyRequest(image=image, stored_embeddings=[enrolled]), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.Identify(
            pb.IdentifyRequest(
                image=photo("couple.jpg"), candidates=[pb.Candidate(id="alice-1234", embedding=enrolled)]
            ),
            timeout=30,
        )
    text = json_log.getvalue()
    assert len(lines(json_log, "facesvc.requests")) == 3
    assert base64.b64encode(image[1000:1100]).decode()[:40] not in text
    for value in enrolled.values[:8]:
        assert f"{value:.5f}"[:7] not in text
    assert "alice-1234" not in text


def test_log_level_setting_governs_the_request_lines(process: list[subprocess.Popen[str]]) -> None:
    """The real process: FACESVC_LOG_LEVEL=INFO writes Enroll's line, not the probe's."""
    proc = spawn_server(process, FACESVC_LOG_LEVEL="INFO")
    port, _ = serving_ports(proc, timeout=60)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        pb_grpc.FaceServiceStub(channel).Enroll(
            pb.EnrollRequest(image=photo("img1.jpg")), metadata=[(REQUEST_ID, "from-test")], timeout=30
        )
    proc.terminate()
    _, rest = proc.communicate(timeout=30)
    requests = [e for e in map(json.loads, rest.splitlines()) if e["logger"] == "facesvc.requests"]
    assert [(e["rpc"], e["request_id"]) for e in requests] == [("facesvc.v1.FaceService/Enroll", "from-test")]
