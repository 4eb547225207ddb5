"""create_server: the gRPC server with FaceService, standard health checking and reflection."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.templates import Templates
from facesvc.rpc.auth import PROBE_SERVICES, ApiKeyInterceptor
from facesvc.rpc.interceptors import UnaryInterceptor
from facesvc.rpc.limits import MessageLimitInterceptor, transport_limit
from facesvc.rpc.metrics import MetricsEndpoint, MetricsInterceptor, ServiceMetrics, observe_stage
from facesvc.rpc.request_log import RequestLogInterceptor
from facesvc.rpc.servicer import FaceServiceServicer
from facesvc.rpc.servicer import add_to_server as add_face_service
from facesvc.v1 import face_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FaceService"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class FaceServer:
    """A started-or-not gRPC server and the health state it reports."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    _serving: threading.Event = field(default_factory=threading.Event)
    metrics: ServiceMetrics | None = None
    metrics_endpoint: MetricsEndpoint | None = None
    #: The template policy and key ring (reloaded on SIGHUP by facesvc.rpc.workers).
    templates: Templates | None = None
    #: The one servicer, and the request-log and metrics interceptors around it, which the
    #: HTTP door (facesvc.http) runs for its calls too.
    servicer: FaceServiceServicer | None = None
    observers: list[UnaryInterceptor[Any]] = field(default_factory=list)

    @property
    def metrics_port(self) -> int | None:
        return self.metrics_endpoint.port if self.metrics_endpoint else None

    @property
    def serving(self) -> bool:
        return self._serving.is_set()

    def set_serving(self) -> None:
        """Engine loaded and warmed up: tell probes and the mesh to send traffic."""
        self._serving.set()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self.metrics:
            self.metrics.set_serving(True)

    def stop(self, grace: float | None) -> threading.Event:
        """Go NOT_SERVING first, refuse new calls, let in-flight ones finish within `grace`."""
        self._serving.clear()
        self.health.enter_graceful_shutdown()
        if self.metrics:
            self.metrics.set_serving(False)
        done: threading.Event = self.server.stop(grace)
        if self.metrics_endpoint:
            self.metrics_endpoint.close_when(done)
        return done


def create_server(settings: Settings, engine: FaceEngine, *, reuse_port: bool = False) -> FaceServer:
    """Build and bind (not start) the server; health reports NOT_SERVING until
    `set_serving()`. The port is the bound one, so settings.port may be 0. With
    `reuse_port`, several processes serve the same port (see facesvc.rpc.workers)."""
    options = [
        # Above max_message_bytes: facesvc refuses those itself, so they are logged and
        # counted (facesvc.rpc.limits).
        ("grpc.max_receive_message_length", transport_limit(settings.max_message_bytes)),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        # Keepalive suited to a mesh: find dead peers, accept the sidecar's pings.
        ("grpc.keepalive_time_ms", round(settings.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", round(settings.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            round(settings.keepalive_min_client_ping_seconds * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_idle_ms", round(settings.max_connection_idle_seconds * 1000)),
    ]
    if settings.max_connection_age_seconds is not None:
        options.append(("grpc.max_connection_age_ms", round(settings.max_connection_age_seconds * 1000)))
        options.append(("grpc.max_connection_age_grace_ms", round(settings.grace_seconds * 1000)))
    metrics = None
    observers: list[UnaryInterceptor[Any]] = [RequestLogInterceptor()]
    keys = settings.all_api_keys()
    if settings.metrics_port is not None:
        methods = [method.name for method in pb.DESCRIPTOR.services_by_name["FaceService"].methods]
        metrics = ServiceMetrics(engine, {SERVICE_NAME: methods, HEALTH_SERVICE_NAME: ["Check"]})
        observers.append(MetricsInterceptor(metrics))
        if engine.observer is None:
            engine.observer = observe_stage
    interceptors: list[object] = list(observers)
    if keys:
        # Innermost, so refused calls are still logged and counted.
        interceptors.append(ApiKeyInterceptor(keys, frozenset() if settings.auth_probes else PROBE_SERVICES))
    # Innermost: an oversized call is refused with its reason inside the log and metrics
    # interceptors, and a caller without a valid key hears UNAUTHENTICATED first.
    interceptors.append(MessageLimitInterceptor(settings.max_message_bytes))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="facesvc-rpc"),
        options=options,
        interceptors=interceptors,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    face_server = FaceServer(
        server=server, port=0, health=health_servicer, metrics=metrics, observers=observers
    )
    face_server.templates = Templates.configured(settings.template_mode, settings.template_keys_file)
    face_server.servicer = FaceServiceServicer(
        engine,
        is_serving=lambda: face_server.serving,
        templates=face_server.templates,
        session_metrics=metrics,
        settings=settings,
    )
    add_face_service(face_server.servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        face_server.port = server.add_secure_port(address, credentials)
    else:
        face_server.port = server.add_insecure_port(address)
    if face_server.port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    if metrics is not None and settings.metrics_port is not None and not reuse_port:
        # With reuse_port this process is one of several; the supervisor serves their sum.
        face_server.metrics_endpoint = MetricsEndpoint(metrics.registry, settings.host, settings.metrics_port)
    return face_server
