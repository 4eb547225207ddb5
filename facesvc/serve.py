"""The facesvc process: the gRPC server (facesvc.rpc) with the HTTP door (facesvc.http)
beside it, composed here so that neither layer imports the other's server; one or
several serving processes (facesvc.rpc.workers), until SIGTERM."""

from __future__ import annotations

from collections.abc import Mapping

from facesvc.config import Settings
from facesvc.rpc.server import FaceServer
from facesvc.rpc.workers import Door, process_count, serve, supervise


def http_door(settings: Settings, face_server: FaceServer, reuse_port: bool) -> Mapping[str, Door]:
    """The HTTP door onto the same servicer, unless FACESVC_HTTP_PORT is 0."""
    if settings.http_port == 0:
        return {}
    from facesvc.http.server import HttpServer  # only where HTTP is served

    return {"http_port": HttpServer(settings, face_server, reuse_port=reuse_port)}


def run(settings: Settings) -> int:
    """Serve gRPC and HTTP until SIGTERM or SIGINT, in one process or FACESVC_PROCESSES;
    returns the exit code."""
    processes = process_count(settings)
    if processes == 1:
        return serve(settings, doors=http_door)
    return supervise(settings, processes, doors=http_door)
