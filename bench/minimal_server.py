"""The floors `make bench` compares against: the least gRPC server grpcio allows (one
generic handler, no interceptors, no admission, no logging).

`running()` starts it in a child process (`python -m bench.minimal_server [--engine]`,
which prints its port once ready) and yields a channel to it. It always answers
`ECHO` (bytes in, nothing out): the bare round trip. With `engine=True` it also loads the
default engine and answers `VERIFY` (a facesvc.v1.VerifyRequest in, a bare VerifyResponse
out), so the difference from facesvc is facesvc's own per-call work.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from facesvc.config import Settings
from facesvc.engine import FaceEngine, StoredEmbedding
from facesvc.v1 import face_service_pb2 as pb

SERVICE = "bench.Minimal"
VERIFY, ECHO = f"/{SERVICE}/Verify", f"/{SERVICE}/Echo"


def serve(with_engine: bool) -> None:
    handlers: dict[str, Any] = {"Echo": grpc.unary_unary_rpc_method_handler(lambda _request, _context: b"")}
    if with_engine:
        engine = FaceEngine(Settings())
        engine.load()

        def verify(request: pb.VerifyRequest, _context: grpc.ServicerContext) -> pb.VerifyResponse:
            stored = [
                StoredEmbedding(np.asarray(e.values, dtype=np.float32), e.model)
                for e in request.stored_embeddings
            ]
            result = engine.verify(request.image, stored)
            return pb.VerifyResponse(match=result.match, distance=result.distance)

        handlers["Verify"] = grpc.unary_unary_rpc_method_handler(
            verify,
            request_deserializer=pb.VerifyRequest.FromString,
            response_serializer=pb.VerifyResponse.SerializeToString,
        )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


@contextlib.contextmanager
def running(*, engine: bool) -> Iterator[grpc.Channel]:
    """The server in a child process, and a channel to it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.minimal_server", *(["--engine"] if engine else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("bench/minimal_server.py did not start")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    serve(with_engine=sys.argv[1:] == ["--engine"])
