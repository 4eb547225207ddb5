"""Overload, time, authentication, transport security and privacy, proven against real servers."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.errors import RequestAbandonedError
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests import certs, images
from tests.conftest import (
    ROOT,
    log_lines,
    photo,
    rejection,
    server_environment,
    spawn_server,
    start_server,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _server(engine: FaceEngine, **overrides: object) -> FaceServer:
    settings = Settings(port=0, host="127.0.0.1", **overrides)  # type: ignore[arg-type]
    return start_server(settings, engine.sharing_models(settings))


@pytest.fixture
def servers(engine: FaceEngine) -> Iterator[list[FaceServer]]:
    started: list[FaceServer] = []
    yield started
    for face_server in started:
        face_server.stop(None).wait()


# ---- overload --------------------------------------------------------------------------


def test_beyond_the_limit_callers_get_resource_exhausted_and_health_stays_serving(
    engine: FaceEngine, servers: list[FaceServer]
) -> None:
    face_server = _server(engine, max_concurrent_rpcs=2)
    servers.append(face_server)
    target = f"127.0.0.1:{face_server.port}"
    request = pb.EnrollRequest(image=photo("img4.jpg"))
    outcomes: list[str] = []
    health_seen: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                health_seen.append(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)
                time.sleep(0.02)

    def client(_: int) -> None:
        with grpc.insecure_channel(target) as channel:  # a connection of its own, like a real caller
            stub = pb_grpc.FaceServiceStub(channel)
            for _ in range(3):
                try:
                    stub.Enroll(request, timeout=60)
                    outcomes.append("OK")
                except grpc.RpcError as error:
                    code, reason, metadata = rejection(error)
                    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED"), (
                        code,
                        reason,
                    )
                    assert metadata["max_concurrent_rpcs"] == "2"
                    outcomes.append(reason)

    prober = threading.Thread(target=probe)
    prober.start()
    with ThreadPoolExecutor(16) as pool:  # 8x the limit
        list(pool.map(client, range(16)))
    stop.set()
    prober.join()
    assert "OK" in outcomes and "OVERLOADED" in outcomes, outcomes
    assert health_seen and set(health_seen) == {SERVING}


# ---- deadlines and cancellation -----------------------------------------------------------


def test_cancelled_work_stops_at_the_next_stage_boundary(engine: FaceEngine) -> None:
    stages: list[str] = []
    engine.observer, previous = (lambda stage, _seconds: stages.append(stage)), engine.observer
    try:
        with pytest.raises(RequestAbandonedError):
            engine.enroll(photo("img1.jpg"), should_stop=lambda: bool(stages))
    finally:
        engine.observer = previous
    assert stages == ["decode"]  # detection, quality and embedding never ran


def test_a_call_past_its_deadline_is_not_worked_on(engine: FaceEngine, servers: list[FaceServer]) -> None:
    face_server = _server(engine)
    servers.append(face_server)
    stages: list[str] = []
    face_server_engine = face_server.server  # noqa: F841 - kept alive by the fixture
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        stub.Health(pb.HealthRequest(), timeout=5)  # connected
        engine.observer, previous = (lambda stage, _s: stages.append(stage)), engine.observer
        try:
            for _ in range(5):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Enroll(pb.EnrollRequest(image=photo("img4.jpg")), timeout=0.005)
                assert caught.value.code() in {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
            time.sleep(0.5)
        finally:
            engine.observer = previous
        # Each call either never started or stopped at a boundary: never all five stages.
        assert stages.count("embed") == 0, stages
        assert stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding.values


# ---- API keys ---------------------------------------------------------------------------------


def test_api_keys(engine: FaceEngine, servers: list[FaceServer], caplog: pytest.LogCaptureFixture) -> None:
    face_server = _server(engine, api_keys="first-key,second-key")
    servers.append(face_server)
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        request = pb.EnrollRequest(image=photo("img1.jpg"))
        for metadata in [(), (("x-api-key", "wrong"),), (("authorization", "Bearer first"),)]:
            with (
                caplog.at_level(logging.WARNING, logger="facesvc.security"),
                pytest.raises(grpc.RpcError) as caught,
            ):
                stub.Enroll(request, timeout=30, metadata=metadata)
            code, reason, _ = rejection(caught.value)
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
        assert stub.Enroll(
            request, timeout=30, metadata=(("authorization", "Bearer second-key"),)
        ).embedding.values
        assert (
            stub.Health(pb.HealthRequest(), timeout=5, metadata=(("x-api-key", "first-key"),)).model
            == "SFace"
        )
        # Probes stay open.
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert (
        "unauthenticated" in logged
        and "first-key" not in logged
        and "wrong" not in logged.split("details")[0]
    )


def test_probes_can_require_a_key_too(engine: FaceEngine, servers: list[FaceServer]) -> None:
    face_server = _server(engine, api_keys="probe-key", auth_probes=True)
    servers.append(face_server)
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            health.Check(
                health_pb2.HealthCheckRequest(), timeout=5, metadata=(("x-api-key", "probe-key"),)
            ).status
            == SERVING
        )


# ---- TLS and mutual TLS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key, ca_cert = certs.authority()
    _stranger, stranger_key, stranger_cert = certs.authority("someone else's CA")
    server_cert, server_key = certs.write(
        folder, "server", certs.issue(ca_key, ca_cert, "localhost", server=True)
    )
    (folder / "ca.crt").write_bytes(ca.cert)
    return {
        "ca": ca.cert,
        "ca_file": folder / "ca.crt",
        "server_cert": server_cert,
        "server_key": server_key,
        "client": certs.issue(ca_key, ca_cert, "attendance-kiosk", server=False),
        "stranger_client": certs.issue(stranger_key, stranger_cert, "intruder", server=False),
    }


def _tls_health(port: int, credentials: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        return int(
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        )


def test_tls(engine: FaceEngine, servers: list[FaceServer], pki: dict[str, object]) -> None:
    face_server = _server(engine, tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"])
    servers.append(face_server)
    assert _tls_health(face_server.port, grpc.ssl_channel_credentials(root_certificates=pki["ca"])) == SERVING  # type: ignore[arg-type]
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)


def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    engine: FaceEngine, servers: list[FaceServer], pki: dict[str, object]
) -> None:
    face_server = _server(
        engine,
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca_file"],
    )
    servers.append(face_server)
    client, stranger = pki["client"], pki["stranger_client"]
    trusted = grpc.ssl_channel_credentials(pki["ca"], client.key, client.cert)  # type: ignore[attr-defined,arg-type]
    assert _tls_health(face_server.port, trusted) == SERVING
    for credentials in (
        grpc.ssl_channel_credentials(pki["ca"]),  # type: ignore[arg-type]
        grpc.ssl_channel_credentials(pki["ca"], stranger.key, stranger.cert),  # type: ignore[attr-defined,arg-type]
    ):
        with pytest.raises(grpc.RpcError) as caught:
            _tls_health(face_server.port, credentials)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake failed


# ---- repeated failures ------------------------------------------------------------------------------


def test_repeated_failures_raise_a_security_event_and_can_throttle(
    engine: FaceEngine, servers: list[FaceServer], caplog: pytest.LogCaptureFixture
) -> None:
    face_server = _server(engine, failure_threshold=3, throttle_failing_callers=True)
    servers.append(face_server)
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        someone_else = stub.Enroll(pb.EnrollRequest(image=photo("img17.jpg")), timeout=30).embedding
        claim = pb.VerifyRequest(image=photo("img1.jpg"), stored_embeddings=[someone_else])
        key = (("x-api-key", "door-3"),)  # no keys configured: the key only names the caller
        with caplog.at_level(logging.WARNING, logger="facesvc.security"):
            for _ in range(3):
                assert not stub.Verify(claim, timeout=30, metadata=key).match
            with pytest.raises(grpc.RpcError) as caught:
                stub.Verify(claim, timeout=30, metadata=key)
        code, reason, _ = rejection(caught.value)
        assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "CALLER_THROTTLED")
        events = [r for r in caplog.records if getattr(r, "event", "") == "repeated_failures"]
        assert len(events) == 1 and events[0].failures == 3  # type: ignore[attr-defined]
        assert events[0].caller.startswith("key:") and "door-3" not in repr(events[0].__dict__)  # type: ignore[attr-defined]
        # Another caller is not affected.
        assert not stub.Verify(claim, timeout=30, metadata=(("x-api-key", "door-4"),)).match


# ---- graceful shutdown under load --------------------------------------------------------------------


def test_sigterm_under_load(process: list[subprocess.Popen[str]]) -> None:
    proc = spawn_server(process, FACESVC_GRACE_SECONDS="20")
    entries = list(log_lines(proc, "serving", time.monotonic() + 60))
    port = entries[-1]["port"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
        assert next(watch).status == SERVING
        in_flight = [
            stub.Enroll.future(pb.EnrollRequest(image=photo(n)), timeout=60)
            for n in ("img4.jpg", "img31.jpg", "img1.jpg", "img33.jpg", "img23.jpg", "img13.jpg")
        ]
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING  # health turns first
        time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Enroll(pb.EnrollRequest(image=photo("img2.jpg")), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert all(len(f.result().embedding.values) == 128 for f in in_flight)
    assert proc.wait(timeout=30) == 0


# ---- privacy --------------------------------------------------------------------------------------------


def test_nothing_biometric_is_logged_or_written(tmp_path: Path) -> None:
    """Every RPC, successful and failing, with DEBUG logs: no image bytes (raw or base64),
    no embedding value, and no file written in the working or temporary directories."""
    work, temp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    env = server_environment(FACESVC_LOG_LEVEL="DEBUG", TMPDIR=str(temp))
    proc = subprocess.Popen(
        [os.environ.get("PYTHON", __import__("sys").executable), str(ROOT / "server.py")],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        entries = list(log_lines(proc, "serving", time.monotonic() + 60))
        port = entries[-1]["port"]
        sent: list[bytes] = []
        embeddings: list[float] = []
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.FaceServiceStub(channel)
            for name in ("img1.jpg", "img2.jpg"):
                sent.append(photo(name))
                response = stub.Enroll(pb.EnrollRequest(image=sent[-1]), timeout=30)
                embeddings.extend(response.embedding.values)
            stored = [response.embedding]
            failing = [
                photo("couple.jpg"),
                images.blurred("img1.jpg", 40),
                b"\x89PNG broken",
                images.shrunk("img27.jpg", 400),
            ]
            sent.extend(failing)
            for data in [sent[0], *failing]:
                for call, request in (
                    (stub.Enroll, pb.EnrollRequest(image=data)),
                    (stub.Verify, pb.VerifyRequest(image=data, stored_embeddings=stored)),
                    (
                        stub.Identify,
                        pb.IdentifyRequest(
                            image=data, candidates=[pb.Candidate(id="x", embedding=stored[0])]
                        ),
                    ),
                ):
                    with contextlib.suppress(grpc.RpcError):
                        call(request, timeout=30)
            foreign = pb.Embedding(values=[0.123456] * 128, model="Dlib")
            with pytest.raises(grpc.RpcError):
                stub.Verify(pb.VerifyRequest(image=sent[0], stored_embeddings=[foreign]), timeout=30)
            embeddings.extend(foreign.values)
            stub.Health(pb.HealthRequest(), timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    logs = stdout + stderr + "\n".join(str(e) for e in entries)
    assert "suspicious activity" in logs and '"level": "DEBUG"' in logs
    for data in sent:
        for start in range(0, max(1, len(data) - 48), max(1, len(data) // 8)):
            chunk = data[start : start + 48]
            assert base64.b64encode(chunk).decode()[8:40] not in logs
            assert chunk.hex()[8:40] not in logs
            assert repr(chunk)[10:40] not in logs
    for value in embeddings[::7]:
        for text in (f"{value:.6g}", f"{value:.4f}", repr(value)):
            if len(text.strip("-0.")) >= 4:
                assert text not in logs, f"embedding value {text} appears in the logs"
    assert list(work.iterdir()) == [] and list(temp.iterdir()) == []
