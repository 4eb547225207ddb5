"""Start-up, health, reflection, configuration and shutdown, as a mesh and an operator see them."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import ROOT, log_lines, photo, rejection, spawn_server, start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_goes_from_not_serving_to_serving_once_the_engine_has_loaded() -> None:
    settings = Settings(port=0, host="127.0.0.1")
    engine = FaceEngine(settings)
    face_server = start_server(settings, engine)  # engine not loaded yet
    try:
        with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "facesvc.v1.FaceService"):
                assert (
                    health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
                    == NOT_SERVING
                )
            stub = pb_grpc.FaceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=10)
            assert rejection(caught.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "ENGINE_NOT_READY")
            assert stub.Health(pb.HealthRequest(), timeout=5).status == pb.SERVING_STATUS_NOT_SERVING

            watch = health.Watch(health_pb2.HealthCheckRequest(service="facesvc.v1.FaceService"), timeout=60)
            assert next(watch).status == NOT_SERVING
            engine.load()
            face_server.set_serving()
            assert next(watch).status == SERVING
            watch.cancel()
            assert stub.Health(pb.HealthRequest(), timeout=5).status == pb.SERVING_STATUS_SERVING
            assert (
                len(stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding.values)
                == 128
            )
    finally:
        face_server.stop(None).wait()


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(reflection.ServerReflectionInfo(iter([request]), timeout=5))
    names = {service.name for service in response.list_services_response.service}
    assert {
        "facesvc.v1.FaceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    describe = reflection_pb2.ServerReflectionRequest(file_containing_symbol="facesvc.v1.FaceService")
    files = next(reflection.ServerReflectionInfo(iter([describe]), timeout=5)).file_descriptor_response
    assert files.file_descriptor_proto  # what `grpcurl describe` reads


# ---- the real process: server.py as `make run` starts it --------------------------


def test_server_process_serves_and_exits_cleanly_on_sigterm(process: list[subprocess.Popen[str]]) -> None:
    proc = spawn_server(process)
    entries = list(log_lines(proc, "serving", time.monotonic() + 60))
    assert entries[-1]["message"] == "serving", entries
    port = entries[-1]["port"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
        stub = pb_grpc.FaceServiceStub(channel)
        # A call in flight when SIGTERM arrives still completes.
        future = stub.Enroll.future(pb.EnrollRequest(image=photo("img33.jpg")), timeout=30)
        time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert len(future.result().embedding.values) == 128
    assert proc.wait(timeout=30) == 0


def test_bad_setting_stops_start_up_with_a_clear_message(process: list[subprocess.Popen[str]]) -> None:
    proc = spawn_server(process, FACESVC_MIN_FACE_SIZE="eighty")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "min_face_size" in stderr and "eighty" in stderr


def test_unknown_model_refuses_to_start(process: list[subprocess.Popen[str]]) -> None:
    proc = spawn_server(process, FACESVC_MODEL="NoSuchNet")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "NoSuchNet" in stderr and "Facenet512" in stderr  # names the choices


def test_model_without_weights_refuses_to_start_naming_the_file(
    process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """Facenet512's weights are not on this machine and there is no network here: the
    service must refuse to start, naming the file and where to put it."""
    proc = spawn_server(process, FACESVC_MODEL="Facenet512", FACESVC_WEIGHTS_DIR=str(tmp_path))
    _, stderr = proc.communicate(timeout=300)
    if proc.returncode == 0:  # pragma: no cover - a machine with a network and the weights
        pytest.skip("Facenet512 weights were available")
    assert proc.returncode == 1
    assert "facenet512_weights" in stderr and str(tmp_path) in stderr
    assert list(tmp_path.iterdir()) == []


def test_suspicious_activity_is_logged_with_peer_and_reason_without_biometrics(
    stub: pb_grpc.FaceServiceStub, server: FaceServer, caplog: pytest.LogCaptureFixture
) -> None:
    enrolled = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding
    with caplog.at_level("DEBUG", logger="facesvc"), pytest.raises(grpc.RpcError):
        stub.Verify(pb.VerifyRequest(image=photo("couple.jpg"), stored_embeddings=[enrolled]), timeout=30)
    records = [r for r in caplog.records if r.name == "facesvc.security"]
    assert len(records) == 1
    record = records[0]
    assert record.reason == "MULTIPLE_FACES" and record.rpc == "Verify"  # type: ignore[attr-defined]
    assert "127.0.0.1" in record.peer  # type: ignore[attr-defined]
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert f"{enrolled.values[0]:.4f}"[:6] not in text


def test_several_processes_share_the_port_and_stop_together(process: list[subprocess.Popen[str]]) -> None:
    """FACESVC_PROCESSES=2: two engines behind one port (SO_REUSEPORT). Every connection,
    whichever process takes it, finds a SERVING engine; SIGTERM stops them all, exit 0."""
    proc = spawn_server(process, FACESVC_PROCESSES="2")
    entries = list(log_lines(proc, "serving", time.monotonic() + 90))
    assert entries[-1]["message"] == "serving" and entries[-1]["processes"] == 2, entries
    assert sum(1 for e in entries if e.get("message") == "engine ready") == 2
    port = entries[-1]["port"]
    for _ in range(6):  # new connections, spread by the kernel
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
            stub = pb_grpc.FaceServiceStub(channel)
            assert (
                len(stub.Enroll(pb.EnrollRequest(image=photo("img11.jpg")), timeout=30).embedding.values)
                == 128
            )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_configuration_page_lists_every_setting() -> None:
    """The configuration table is generated from Settings; a new setting must be documented."""
    from facesvc.tools import settings_table

    text = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert settings_table.replaced(text) == text, "run: python -m facesvc.tools.settings_table --write"
