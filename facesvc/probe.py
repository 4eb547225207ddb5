"""Health probe for containers: exit 0 only when the standard gRPC health check says SERVING.

    python -m facesvc.probe [--target HOST:PORT] [--service NAME] [--timeout SECONDS]

Docker's HEALTHCHECK and Kubernetes exec probes run it; Kubernetes 1.27+ can also
probe gRPC natively (deploy/kubernetes uses that). It imports gRPC and the health
stubs only, never the engine, so it answers in a fraction of a second.
Exit codes: 0 SERVING, 1 anything else (NOT_SERVING, unknown service, no answer),
2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING, NOT_SERVING = 0, 1


def check(target: str, service: str = "", timeout: float = 3.0) -> str:
    """The status name the server reports for `service` ("" = the whole server), or why
    there is none."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facesvc.probe", description="Exit 0 only when the gRPC health check says SERVING."
    )
    parser.add_argument(
        "--target",
        default=f"localhost:{os.environ.get('FACESVC_PORT') or 50051}",
        help="host:port of the server (default: localhost:$FACESVC_PORT, else localhost:50051)",
    )
    parser.add_argument("--service", default="", help='service to ask about (default "": the whole server)')
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)"
    )
    arguments = parser.parse_args(argv)
    if arguments.timeout <= 0:
        parser.error("--timeout must be positive")
    status = check(arguments.target, arguments.service, arguments.timeout)
    print(f"{arguments.target} {arguments.service or '(server)'}: {status}")
    return SERVING if status == "SERVING" else NOT_SERVING


if __name__ == "__main__":
    sys.exit(main())
