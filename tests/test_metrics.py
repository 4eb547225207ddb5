"""Prometheus metrics, scraped over HTTP from a real server after real calls with real photos."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from facesvc import __version__
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import ROOT, photo, rejection, start_server

FACE = "facesvc.v1.FaceService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposition(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def scrape(port: int) -> Samples:
    text = exposition(port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
def metered() -> Iterator[tuple[FaceServer, FaceEngine]]:
    """A server with metrics on, whose engine is not loaded yet."""
    settings = Settings(port=0, host="127.0.0.1", metrics_port=0)
    engine = FaceEngine(settings)
    face_server = start_server(settings, engine)
    yield face_server, engine
    face_server.stop(None).wait()


def test_metrics_move_with_real_calls(metered: tuple[FaceServer, FaceEngine]) -> None:
    face_server, engine = metered
    assert face_server.metrics_port
    before = scrape(face_server.metrics_port)
    assert value(before, "facesvc_serving") == 0
    # Every FaceService method is there at zero before its first call, so rate() works at once.
    for method in ("Enroll", "Verify", "Identify", "Health"):
        assert value(before, "grpc_server_started_total", grpc_method=method) == 0
    assert value(before, "facesvc_worker_threads") == engine.settings.worker_threads
    assert value(before, "process_resident_memory_bytes") > 0

    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as not_ready:
            stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30)
        assert rejection(not_ready.value)[1] == "ENGINE_NOT_READY"

        engine.load()
        face_server.set_serving()

        enrolled = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding
        for image, reason in (
            (photo("couple.jpg"), "MULTIPLE_FACES"),
            (b"not an image", "IMAGE_UNDECODABLE"),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Enroll(pb.EnrollRequest(image=image), timeout=30)
            assert rejection(refused.value)[1] == reason
        verified = stub.Verify(
            pb.VerifyRequest(image=photo("img2.jpg"), stored_embeddings=[enrolled]), timeout=30
        )
        assert verified.match
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1  # SERVING

    after = scrape(face_server.metrics_port)
    enroll = {"grpc_service": FACE, "grpc_method": "Enroll", "grpc_type": "unary"}
    assert value(after, "grpc_server_started_total", **enroll) == 4
    assert value(after, "grpc_server_handled_total", **enroll, grpc_code="OK") == 1
    assert value(after, "grpc_server_handled_total", **enroll, grpc_code="INVALID_ARGUMENT") == 2
    assert value(after, "grpc_server_handled_total", **enroll, grpc_code="UNAVAILABLE") == 1
    assert value(after, "grpc_server_handled_total", grpc_method="Verify", grpc_code="OK") == 1
    assert (
        value(after, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health", grpc_code="OK") == 1
    )
    assert value(after, "grpc_server_handling_seconds_count", **enroll) == 4
    # Each accepted call took at least its engine stages; the histogram holds real durations.
    assert value(after, "grpc_server_handling_seconds_sum", **enroll) > 0.01
    assert value(after, "grpc_server_handling_seconds_bucket", **enroll, le="+Inf") == 4

    for reason in ("ENGINE_NOT_READY", "MULTIPLE_FACES", "IMAGE_UNDECODABLE"):
        assert value(after, "facesvc_rejections_total", grpc_method="Enroll", reason=reason) == 1
    assert value(after, "facesvc_requests_in_flight", grpc_method="Enroll") == 0

    # Stages: img1 and img2 went all the way; couple.jpg stopped at select (two faces);
    # the undecodable bytes stopped in decode, which then reports nothing.
    stage = "facesvc_engine_stage_seconds_count"
    assert value(after, stage, stage="decode") >= 3
    assert value(after, stage, stage="detect") == 3
    assert value(after, stage, stage="select") == 2
    assert value(after, stage, stage="quality") == 2
    assert value(after, stage, stage="embed") == 2
    assert value(after, "facesvc_engine_stage_seconds_sum", stage="embed") > 0

    assert value(after, "facesvc_serving") == 1
    assert value(after, "facesvc_model_load_seconds") == pytest.approx(engine.load_seconds)
    assert value(after, "facesvc_build_info", version=__version__, model="SFace", detector="yunet") == 1


def test_a_bursts_frames_are_timed_like_any_frame(metered: tuple[FaceServer, FaceEngine]) -> None:
    """A burst's further frames are analysed on the engine's burst threads; their stages
    still reach the request's metrics (the caller's context travels with them)."""
    face_server, engine = metered
    engine.load()
    face_server.set_serving()
    assert face_server.metrics_port
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        enrolled = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding
        before = scrape(face_server.metrics_port)
        burst = pb.IdentifyRequest(
            image=photo("img2.jpg"),
            more_images=[photo("img1.jpg"), photo("img2.jpg")],
            candidates=[pb.Candidate(id="me", embedding=enrolled)],
        )
        assert stub.Identify(burst, timeout=60).frames == 3
    after = scrape(face_server.metrics_port)
    stage = "facesvc_engine_stage_seconds_count"
    for name in ("detect", "quality", "embed"):
        assert value(after, stage, stage=name) - value(before, stage, stage=name) == 3, name


def test_metrics_endpoint_closes_after_the_server_has_drained() -> None:
    settings = Settings(port=0, host="127.0.0.1", metrics_port=0)
    face_server = start_server(settings, FaceEngine(settings))
    port = face_server.metrics_port
    assert port is not None and scrape(port)
    face_server.stop(0.5).wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            scrape(port)
        except (urllib.error.URLError, ConnectionError):
            return
        time.sleep(0.05)
    pytest.fail("the metrics endpoint still answers after stop")


def test_metrics_are_off_unless_a_port_is_set(server: FaceServer) -> None:
    assert Settings().metrics_port is None
    assert server.metrics is None and server.metrics_port is None


def test_metrics_port_must_differ_from_the_grpc_port() -> None:
    with pytest.raises(ValidationError, match="metrics_port"):
        Settings(port=50051, metrics_port=50051)


def test_every_series_the_operations_guide_names_is_exported(metered: tuple[FaceServer, FaceEngine]) -> None:
    """docs/OPERATIONS.md's tables and PromQL name only series a real server exports."""
    face_server, engine = metered
    engine.load()
    face_server.set_serving()
    assert face_server.metrics_port
    families = list(text_string_to_metric_families(exposition(face_server.metrics_port)))
    exported = {family.name for family in families} | {s.name for f in families for s in f.samples}
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    named = set(re.findall(r"\b((?:facesvc|grpc_server|process)_[a-z_]+)\b", guide))
    assert named, "the guide names no series"
    missing = sorted(name for name in named if name not in exported)
    assert not missing, f"docs/OPERATIONS.md names series the server does not export: {missing}"
