"""FACESVC_MAX_MESSAGE_BYTES: an oversized call is refused with its reason, logged and counted.

A real server on an ephemeral port with metrics on and a 4 MiB limit (the real photos are
up to 2.5 MB), so every size here is sent in a fraction of a second.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.logs import JsonFormatter
from facesvc.rpc.limits import TRANSPORT_FACTOR
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import photo, rejection, start_server
from tests.test_metrics import scrape, value

LIMIT = 4 * 1024 * 1024
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
def limited(engine: FaceEngine) -> Iterator[FaceServer]:
    settings = Settings(port=0, host="127.0.0.1", metrics_port=0, max_message_bytes=LIMIT)
    face_server = start_server(settings, engine)
    yield face_server
    face_server.stop(None).wait()


@pytest.fixture
def channel(limited: FaceServer) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{limited.port}", options=options) as channel:
        yield channel


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """facesvc.requests lines as the service writes them (JSON, on the handling thread)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("facesvc.requests")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(previous)


def entries(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def padded_photo(total: int) -> pb.EnrollRequest:
    """An EnrollRequest of exactly `total` bytes on the wire: a real photo, then zeros."""
    image = photo("img1.jpg")
    request = pb.EnrollRequest(image=image + bytes(total - len(image) - 5))
    assert request.ByteSize() == total  # tag, 4-byte length, image
    return request


def test_a_request_at_the_limit_is_served_and_one_byte_more_is_refused_logged_and_counted(
    limited: FaceServer, channel: grpc.Channel, request_log: io.StringIO
) -> None:
    stub = pb_grpc.FaceServiceStub(channel)
    served = stub.Enroll(padded_photo(LIMIT), timeout=30)  # JPEG decoders stop at the end marker
    assert len(served.embedding.values) == 128

    with pytest.raises(grpc.RpcError) as caught:
        stub.Enroll(padded_photo(LIMIT + 1), timeout=30)
    code, reason, metadata = rejection(caught.value)
    assert (code, reason) == (EXHAUSTED, "MESSAGE_TOO_LARGE")
    assert metadata == {"size_bytes": str(LIMIT + 1), "max_message_bytes": str(LIMIT)}

    ok, refused = [e for e in entries(request_log) if e["rpc"] == "facesvc.v1.FaceService/Enroll"]
    assert (ok["code"], ok["reason"]) == ("OK", "")
    assert (refused["code"], refused["reason"], refused["level"]) == (
        "RESOURCE_EXHAUSTED",
        "MESSAGE_TOO_LARGE",
        "WARNING",
    )
    assert limited.metrics_port
    samples = scrape(limited.metrics_port)
    assert value(samples, "facesvc_rejections_total", grpc_method="Enroll", reason="MESSAGE_TOO_LARGE") == 1
    assert (
        value(samples, "grpc_server_handled_total", grpc_method="Enroll", grpc_code="RESOURCE_EXHAUSTED") == 1
    )
    assert value(samples, "grpc_server_handled_total", grpc_method="Enroll", grpc_code="OK") == 1


def test_every_method_refuses_an_oversized_request_with_the_reason(
    limited: FaceServer, channel: grpc.Channel, request_log: io.StringIO
) -> None:
    stub = pb_grpc.FaceServiceStub(channel)
    big = bytes(LIMIT)
    embedding = pb.Embedding(values=[0.1] * 128, model="SFace")
    calls = {
        "facesvc.v1.FaceService/Verify": lambda: stub.Verify(
            pb.VerifyRequest(image=big, stored_embeddings=[embedding]), timeout=30
        ),
        # Identify has its own request parser (facesvc.rpc.wire): it never sees these bytes.
        "facesvc.v1.FaceService/Identify": lambda: stub.Identify(
            pb.IdentifyRequest(image=big, candidates=[pb.Candidate(id="a", embedding=embedding)]), timeout=30
        ),
        "grpc.health.v1.Health/Check": lambda: health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="x" * LIMIT), timeout=30
        ),
    }
    for rpc, call in calls.items():
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert rejection(caught.value)[:2] == (EXHAUSTED, "MESSAGE_TOO_LARGE"), rpc
    logged = {e["rpc"]: (e["code"], e["reason"]) for e in entries(request_log)}
    assert logged == {rpc: ("RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE") for rpc in calls}
    assert limited.metrics_port
    samples = scrape(limited.metrics_port)
    for method in ("Verify", "Identify", "Check"):
        assert value(samples, "facesvc_rejections_total", grpc_method=method, reason="MESSAGE_TOO_LARGE") == 1

    # Streaming calls (health Watch, reflection) are held to the same limit.
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service="x" * LIMIT), timeout=30
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(watch))
    assert rejection(caught.value)[:2] == (EXHAUSTED, "MESSAGE_TOO_LARGE")
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="x" * LIMIT)]), timeout=30
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(reflection))
    assert rejection(caught.value)[:2] == (EXHAUSTED, "MESSAGE_TOO_LARGE")


def test_beyond_the_transport_limit_grpc_refuses_unread_and_the_server_carries_on(
    limited: FaceServer, channel: grpc.Channel
) -> None:
    """Far above the limit gRPC refuses the call from its 5-byte header (documented in
    docs/OPERATIONS.md): still RESOURCE_EXHAUSTED, without a reason, never buffered."""
    stub = pb_grpc.FaceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Enroll(pb.EnrollRequest(image=bytes(TRANSPORT_FACTOR * LIMIT)), timeout=30)
    assert caught.value.code() == EXHAUSTED
    assert "larger than max" in (caught.value.details() or "")
    assert len(stub.Enroll(pb.EnrollRequest(image=photo("img2.jpg")), timeout=30).embedding.values) == 128


def test_a_caller_without_a_key_hears_unauthenticated_whatever_the_size(engine: FaceEngine) -> None:
    settings = Settings(port=0, host="127.0.0.1", max_message_bytes=LIMIT, api_keys="k1")
    face_server = start_server(settings, engine)
    try:
        options = [("grpc.max_send_message_length", -1)]
        with grpc.insecure_channel(f"127.0.0.1:{face_server.port}", options=options) as channel:
            stub = pb_grpc.FaceServiceStub(channel)
            oversized = pb.EnrollRequest(image=bytes(LIMIT + 1))
            with pytest.raises(grpc.RpcError) as caught:
                stub.Enroll(oversized, timeout=30)
            assert rejection(caught.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
            with pytest.raises(grpc.RpcError) as caught:
                stub.Enroll(oversized, metadata=[("x-api-key", "k1")], timeout=30)
            assert rejection(caught.value)[:2] == (EXHAUSTED, "MESSAGE_TOO_LARGE")
    finally:
        face_server.stop(None).wait()


def test_a_liveness_stream_ends_with_the_reason_at_its_first_oversized_message(
    limited: FaceServer, channel: grpc.Channel
) -> None:
    """CheckLiveness reads its stream on a thread of its own and refuses one that ends
    early; the oversized message still decides the status, first or later in the stream."""
    stub = pb_grpc.FaceServiceStub(channel)
    embedding = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding
    start = pb.CheckLivenessRequest(start=pb.LivenessStart(stored_embeddings=[embedding], frame_rate=10))
    oversized = pb.CheckLivenessRequest(frame=pb.LivenessFrame(image=bytes(LIMIT), capture_time=0.0))
    for messages in ([oversized], [start, oversized]):
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stub.CheckLiveness(iter(messages), timeout=30):
                pass
        assert rejection(caught.value)[:2] == (EXHAUSTED, "MESSAGE_TOO_LARGE"), len(messages)
