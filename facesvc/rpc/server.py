"""create_server: the gRPC server with FaceService, standard health checking and reflection."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.servicer import FaceServiceServicer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FaceService"].full_name

log = logging.getLogger("facesvc.rpc")


@dataclass
class FaceServer:
    """A started-or-not gRPC server and the health state it reports."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    _serving: threading.Event = field(default_factory=threading.Event)

    @property
    def serving(self) -> bool:
        return self._serving.is_set()

    def set_serving(self) -> None:
        """Engine loaded and warmed up: tell probes and the mesh to send traffic."""
        self._serving.set()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None) -> threading.Event:
        """Go NOT_SERVING first, refuse new calls, let in-flight ones finish within `grace`."""
        self._serving.clear()
        self.health.enter_graceful_shutdown()
        done: threading.Event = self.server.stop(grace)
        return done


def create_server(settings: Settings, engine: FaceEngine) -> FaceServer:
    """Build and bind (not start) the server; health reports NOT_SERVING until
    `set_serving()`. The port is the bound one, so settings.port may be 0."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="facesvc-rpc"),
        options=options,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    face_server = FaceServer(server=server, port=0, health=health_servicer)
    pb_grpc.add_FaceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FaceServiceServicer(engine, is_serving=lambda: face_server.serving), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    face_server.port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if face_server.port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    return face_server
