"""HttpServer: the HTTP door on a port of its own, served by uvicorn on a thread beside
the gRPC server, with the same host, TLS files and lifetime (composed by facesvc.serve)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

import uvicorn

from facesvc.config import Settings
from facesvc.http.app import create_app
from facesvc.http.door import Door
from facesvc.http.limits import HttpLimits
from facesvc.http.protocol import Limits, protocol_class
from facesvc.rpc.server import FaceServer

log = logging.getLogger("facesvc.server")

#: A WebSocket text message holds a frame in base64 (4/3 of its bytes) and some JSON.
_WS_OVERHEAD = 64 * 1024


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening socket on `host`:`port` (0: a free port); "[::]" is every address,
    falling back to IPv4's where IPv6 is switched off."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto says TCP, and without it every response waited ~40 ms for the client's delayed ACK.
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError:
        if address != "::":
            raise
        address, family = "0.0.0.0", socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((address, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def http_limits_of(settings: Settings) -> HttpLimits:
    """The limits the handlers apply (facesvc.http.limits)."""
    return HttpLimits(
        max_json_depth=settings.http_max_json_depth,
        max_json_values=settings.http_max_json_values,
        websocket_idle_seconds=settings.http_websocket_idle_seconds,
    )


def limits_of(settings: Settings) -> Limits:
    """The connection-level limits of the HTTP door (facesvc.http.protocol)."""
    return Limits(
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_connections=settings.http_max_connections,
    )


class HttpServer:
    """Bound at construction (so `port` is known), serving after `start()`."""

    def __init__(self, settings: Settings, face_server: FaceServer, *, reuse_port: bool = False) -> None:
        assert face_server.servicer is not None, "create_server keeps the servicer"
        door = Door(
            face_server.servicer,
            face_server.observers,
            settings.all_api_keys(),
            settings.max_message_bytes,
            open_probes=not settings.auth_probes,
        )
        app = create_app(door, settings.worker_threads, http_limits_of(settings))
        tls = settings.tls_cert_file is not None and settings.tls_key_file is not None
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,  # facesvc's own request log has each call's line
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=round(settings.grace_seconds),
            ws_max_size=settings.liveness_max_frame_bytes * 4 // 3 + _WS_OVERHEAD,
            ws="websockets-sansio",
            ssl_certfile=str(settings.tls_cert_file) if tls else None,
            ssl_keyfile=str(settings.tls_key_file) if tls else None,
            ssl_ca_certs=str(settings.tls_client_ca_file) if settings.tls_client_ca_file else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca_file else ssl.CERT_NONE,
            limit_concurrency=None,
            timeout_keep_alive=settings.http_keepalive_seconds,  # type: ignore[arg-type]
            # httptools (C parser: a 3 MB JSON body costs h11 tens of ms in Python), with
            # the header, time and connection limits uvicorn has no option for.
            http=protocol_class(limits_of(settings)),
        )
        config.load()
        self._server = uvicorn.Server(config)
        port = 0 if settings.http_port < 0 else settings.http_port
        self._socket = bind(settings.host, port, reuse_port)
        self.port: int = self._socket.getsockname()[1]
        self.tls = tls
        self._thread = threading.Thread(target=self._run, name="facesvc-http", daemon=True)
        self._stopped = threading.Event()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._stopped.set()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and not self._stopped.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise OSError(f"the HTTP server did not start on port {self.port}")

    def stop(self) -> threading.Event:
        """Stop accepting, let requests in flight finish within grace_seconds."""
        self._server.should_exit = True
        if not self._thread.is_alive():
            self._socket.close()
            self._stopped.set()
        return self._stopped
