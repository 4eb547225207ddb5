"""Start facesvc: settings from FACESVC_* -> engine -> gRPC server -> serve until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError

from facesvc import __version__, logs
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.errors import ModelUnavailableError
from facesvc.rpc.server import create_server

log = logging.getLogger("facesvc.server")


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"facesvc: invalid configuration:\n{error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    engine = FaceEngine(settings)
    face_server = create_server(settings, engine)
    face_server.server.start()
    log.info("listening", extra={"port": face_server.port, "version": __version__, "status": "NOT_SERVING"})

    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "shutting down",
            extra={"signal": signal.Signals(signum).name, "grace_seconds": settings.grace_seconds},
        )
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        engine.load()
    except ModelUnavailableError as error:
        log.error("cannot start: %s", error, extra={"model": settings.model, "detector": settings.detector})
        face_server.stop(0).wait()
        return 1
    if stopping.is_set():
        face_server.stop(0).wait()
        return 0
    face_server.set_serving()
    log.info(
        "serving",
        extra={
            "port": face_server.port,
            "model": settings.model,
            "detector": settings.detector,
            "status": "SERVING",
        },
    )
    stopping.wait()
    face_server.stop(settings.grace_seconds).wait()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
