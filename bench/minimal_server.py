"""The floor `make bench` compares against: the same engine behind the least gRPC server
grpcio allows (one generic handler, no interceptors, no admission, no logging).

Run by bench/bench.py as `python -m bench.minimal_server PORT`; prints "ready" once the
engine is loaded. Its Verify takes a facesvc.v1.VerifyRequest and answers a bare
VerifyResponse, so the difference from facesvc is facesvc's own per-call work.
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc
import numpy as np

from facesvc.config import Settings
from facesvc.engine import FaceEngine, StoredEmbedding
from facesvc.v1 import face_service_pb2 as pb

METHOD = "/bench.Minimal/Verify"


def main(port: int) -> None:
    engine = FaceEngine(Settings())
    engine.load()

    def verify(request: pb.VerifyRequest, _context: grpc.ServicerContext) -> pb.VerifyResponse:
        stored = [
            StoredEmbedding(np.asarray(e.values, dtype=np.float32), e.model)
            for e in request.stored_embeddings
        ]
        result = engine.verify(request.image, stored)
        return pb.VerifyResponse(match=result.match, distance=result.distance)

    handler = grpc.method_handlers_generic_handler(
        "bench.Minimal",
        {
            "Verify": grpc.unary_unary_rpc_method_handler(
                verify,
                request_deserializer=pb.VerifyRequest.FromString,
                response_serializer=pb.VerifyResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(int(sys.argv[1]))
