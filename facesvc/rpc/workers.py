"""Serving processes: one process serving until SIGTERM, or several sharing one port.

Several processes exist for models whose embedding step holds Python's GIL (dlib's
descriptor: two threads ran it 0.98x as fast as one), where threads cannot use a
second core. Like gRPC's own examples/python/multiprocessing, each worker runs a
complete server (engine, health, reflection) on the same port with SO_REUSEPORT and
the kernel spreads connections over them; the parent only reserves the port, starts
the workers, forwards SIGTERM and reports how they ended.

Other doors onto the same servicer (the HTTP door) are not known here: whoever composes
the process (facesvc.serve) passes a `doors` factory, and each door starts and stops with
the gRPC server.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing.connection import Connection
from types import FrameType
from typing import Protocol

from facesvc import __version__, logs
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.errors import ModelUnavailableError
from facesvc.rpc import metrics
from facesvc.rpc.server import FaceServer, create_server

log = logging.getLogger("facesvc.server")

EXIT_OK, EXIT_CANNOT_START = 0, 1


class Door(Protocol):
    """Another way in beside gRPC (e.g. facesvc.http.server.HttpServer): bound when made,
    serving after start(), draining its calls in flight after stop()."""

    port: int

    def start(self) -> None: ...

    def stop(self) -> threading.Event:
        """Stop accepting, finish what is in flight; the event is set once it has."""
        ...


#: Makes the doors of one serving process, named by the log field of their port
#: (e.g. {"http_port": ...}): (settings, the gRPC server, reuse_port) -> doors.
Doors = Callable[[Settings, FaceServer, bool], Mapping[str, Door]]


def no_doors(_settings: Settings, _face_server: FaceServer, _reuse_port: bool) -> Mapping[str, Door]:
    return {}


def _on_stop_signals(stopping: threading.Event, grace: float) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name, "grace_seconds": grace})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def serve(
    settings: Settings,
    *,
    reuse_port: bool = False,
    on_loaded: Callable[[int], bool] | None = None,
    on_serving: Callable[[], None] | None = None,
    doors: Doors = no_doors,
) -> int:
    """Serve in this process until SIGTERM or SIGINT; returns the exit code.

    Listening starts at once (health NOT_SERVING), the models load and warm up, then
    health turns SERVING. A model that cannot be had ends start-up with exit code 1.
    `on_loaded(port)`, when given, is called once the models are warm and decides
    whether to go SERVING (a worker waits there for its siblings); `on_serving`, once
    health says SERVING. `doors` makes the other doors, started and stopped with gRPC.
    """
    stopping = threading.Event()
    _on_stop_signals(stopping, settings.grace_seconds)
    engine = FaceEngine(settings)
    face_server = create_server(settings, engine, reuse_port=reuse_port)
    others = dict(doors(settings, face_server, reuse_port))
    if face_server.templates is not None:
        templates = face_server.templates
        signal.signal(signal.SIGHUP, lambda _signum, _frame: templates.reload())
    face_server.server.start()
    for door in others.values():
        door.start()
    ports = {"port": face_server.port, **{name: door.port for name, door in others.items()}}
    log.info("listening", extra={**ports, "version": __version__, "status": "NOT_SERVING"})
    try:
        engine.load()
    except ModelUnavailableError as error:
        log.error("cannot start: %s", error, extra={"model": settings.model, "detector": settings.detector})
        _stop(face_server, others.values(), 0)
        return EXIT_CANNOT_START
    go = on_loaded(face_server.port) if on_loaded is not None else True
    if go and not stopping.is_set():
        face_server.set_serving()
        if on_serving is not None:
            on_serving()
        if on_loaded is None:
            log.info("serving", extra={**ports, "model": settings.model, "detector": settings.detector})
        stopping.wait()
    _stop(face_server, others.values(), settings.grace_seconds)
    log.info("stopped")
    return EXIT_OK


def _stop(face_server: FaceServer, others: Iterable[Door], grace: float) -> None:
    """Every door stops together: NOT_SERVING, refuse new calls, let in-flight ones finish."""
    done = face_server.stop(grace)
    stopped = [door.stop() for door in others]
    done.wait()
    for door_done in stopped:
        door_done.wait(grace + 5)


def process_count(settings: Settings) -> int:
    """FACESVC_PROCESSES, or by default one per core when the model holds the GIL, else one."""
    if settings.processes is not None:
        return settings.processes
    from facesvc.engine.pipeline.recognizers import holds_gil

    return (os.cpu_count() or 1) if holds_gil(settings.model) else 1


@contextlib.contextmanager
def _reserved_port(host: str, port: int) -> Iterator[int]:
    """Hold `port` (or pick a free one for 0) with SO_REUSEPORT so the workers can share it."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address, port))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _worker(settings: Settings, parent: Connection, doors: Doors) -> None:
    """One serving process. It reports when its models are warm, then turns SERVING only
    when the parent says every sibling is warm too: a connection the kernel hands to any
    worker must never meet one still loading while health says SERVING."""
    logs.configure(settings.log_level)

    def on_loaded(port: int) -> bool:
        parent.send(("loaded", port))
        return bool(parent.recv() == "go")

    def on_serving() -> None:
        parent.send(("serving", settings.port))

    code = serve(settings, reuse_port=True, on_loaded=on_loaded, on_serving=on_serving, doors=doors)
    with contextlib.suppress(OSError):
        parent.send(("exit", code))
    os._exit(code)


def supervise(settings: Settings, processes: int, doors: Doors = no_doors) -> int:
    """Run `processes` serving workers on one port until SIGTERM; returns the exit code.
    Each worker serves `doors` too, on ports shared the same way."""
    stopping = threading.Event()
    _on_stop_signals(stopping, settings.grace_seconds)
    context = multiprocessing.get_context("fork")  # before any gRPC object exists here
    # The workers' series, summed on the one metrics port (entered before any fork).
    pod_metrics = metrics.PodMetrics(settings.host, settings.metrics_port)
    http_wanted = settings.http_port != 0
    with (
        _reserved_port(settings.host, settings.port) as port,
        _reserved_port(settings.host, max(settings.http_port, 0)) as http_port,
        pod_metrics,
    ):
        worker_settings = settings.model_copy(
            update={"port": port, "http_port": http_port if http_wanted else 0}
        )
        workers = []
        for _ in range(processes):
            parent_end, child_end = context.Pipe(duplex=True)
            process = context.Process(target=_worker, args=(worker_settings, child_end, doors), daemon=False)
            process.start()
            workers.append((process, parent_end))
        pod_metrics.serve()

        def forward_sighup(signum: int, _frame: FrameType | None) -> None:  # the key ring's reload
            for process, _ in workers:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signum)

        signal.signal(signal.SIGHUP, forward_sighup)
        pending = {process.pid for process, _ in workers}
        failed = False
        while pending and not stopping.is_set() and not failed:
            for process, pipe in workers:
                if process.pid in pending and pipe.poll(0.05):
                    kind, _value = pipe.recv()
                    pending.discard(process.pid)
                    failed = failed or kind != "loaded"
                elif process.pid in pending and not process.is_alive():
                    pending.discard(process.pid)
                    failed = True
        go = not failed and not stopping.is_set()
        for process, pipe in workers:
            if process.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send("go" if go else "stop")
        # "serving" only once every worker's health says so, not when they were told to.
        waiting = {process.pid for process, _ in workers} if go else set()
        while waiting and not stopping.is_set():
            for process, pipe in workers:
                if process.pid in waiting and pipe.poll(0.05):
                    waiting.discard(process.pid)
                    go = go and pipe.recv()[0] == "serving"
                elif process.pid in waiting and not process.is_alive():
                    waiting.discard(process.pid)
                    go = False
        failed = failed or (not go and not stopping.is_set())
        if go:
            log.info(
                "serving",
                extra={
                    "port": port,
                    **({"http_port": http_port} if http_wanted else {}),
                    "processes": processes,
                    "model": settings.model,
                    "detector": settings.detector,
                },
            )
            while not stopping.wait(0.5):
                if any(not process.is_alive() for process, _ in workers):
                    log.error("a serving process ended unexpectedly; stopping the others")
                    failed = True
                    break
        for process, _ in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process, _ in workers:
            process.join(settings.grace_seconds + 5)
            if process.is_alive():
                process.kill()
                process.join()
            if process.pid is not None:
                pod_metrics.process_ended(process.pid)
    codes = [process.exitcode for process, _ in workers]
    if failed or any(code != 0 for code in codes):
        return (
            max((code for code in codes if code), default=EXIT_CANNOT_START) if failed else EXIT_CANNOT_START
        )
    log.info("stopped", extra={"processes": processes})
    return EXIT_OK
