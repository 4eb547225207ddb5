"""What scaling out relies on: connections that age out (so round_robin clients re-resolve
and reach new pods), and one metrics port summing several serving processes."""

from __future__ import annotations

import signal
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import photo, serving_ports, spawn_server, start_server
from tests.test_metrics import scrape, value

READY, IDLE = grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.IDLE


def connectivity_after_a_call(settings: Settings, wait: float) -> list[grpc.ChannelConnectivity]:
    face_server = start_server(settings, FaceEngine(settings))
    states: list[grpc.ChannelConnectivity] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
            channel.subscribe(states.append, try_to_connect=False)
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            deadline = time.monotonic() + wait
            # The callbacks arrive on another thread: wait for READY, then for IDLE after it.
            while time.monotonic() < deadline and not (READY in states and states[-1] == IDLE):
                time.sleep(0.05)
    finally:
        face_server.stop(0).wait()
    return states


def test_max_connection_age_closes_connections_so_clients_re_resolve() -> None:
    aged = Settings(port=0, host="127.0.0.1", max_connection_age_seconds=0.5, grace_seconds=0.5)
    states = connectivity_after_a_call(aged, wait=10)
    assert READY in states and states[-1] == IDLE  # GOAWAY: the next call reconnects
    kept = connectivity_after_a_call(Settings(port=0, host="127.0.0.1"), wait=2)
    assert kept[-1] == READY


def test_several_processes_serve_their_summed_metrics_on_one_port(
    process: list[subprocess.Popen[str]],
) -> None:
    proc = spawn_server(process, FACESVC_PROCESSES="2", FACESVC_METRICS_PORT="0")
    port, metrics_port = serving_ports(proc)
    assert metrics_port, "the supervisor serves the metrics"
    calls = 6
    for _ in range(calls):  # a channel each, so the kernel spreads them over both processes
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            pb_grpc.FaceServiceStub(channel).Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30)
    samples = scrape(metrics_port)
    enroll = {"grpc_method": "Enroll", "grpc_code": "OK"}
    assert value(samples, "grpc_server_handled_total", **enroll) == calls
    assert value(samples, "facesvc_engine_stage_seconds_count", stage="embed") == calls
    assert value(samples, "facesvc_serving") == 2  # both processes SERVING
    assert value(samples, "facesvc_worker_threads") == 2 * Settings().worker_threads
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
