"""Prometheus metrics on their own HTTP port: calls, latency, in-flight calls, engine
stages, rejections, model load time and build info (docs/OPERATIONS.md explains each).

The gRPC series carry go-grpc-prometheus's names and labels (grpc_server_handled_total,
grpc_server_handling_seconds, ...), so the dashboards and alerts operators already have
for gRPC services work unchanged; facesvc's own series start with `facesvc_`. Every
gauge names how several processes' values add up, so that prometheus-client's
multiprocess mode can sum a pod's serving processes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token

from grpc_health.v1 import health_pb2
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
    values,
)
from prometheus_client.exposition import start_http_server

from facesvc import __version__, errors
from facesvc.engine import FaceEngine
from facesvc.engine.engine import STAGES
from facesvc.engine.session.session import Failure, SessionResult
from facesvc.engine.types import TemplateUpgrade
from facesvc.rpc.interceptors import Call, Outcome, UnaryInterceptor
from facesvc.rpc.status import INTERNAL_REASON, NOT_READY_REASON, STATUS_CODES

log = logging.getLogger("facesvc.rpc")

_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

#: Seconds. A default-model call takes 30-200 ms of one core; a 4096 px photo about a second.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
#: Seconds. From microseconds (select) to a few hundred milliseconds (decoding a large photo).
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
#: Frames per liveness session: 3 prompts at 15 fps take 40-150.
FRAME_COUNT_BUCKETS = (5, 10, 20, 40, 60, 90, 120, 180, 240, 300, 600)
UNARY = "unary"
#: Every ErrorInfo reason a call can end with (docs/ERRORS.md).
REASONS = sorted(
    {c.reason for c in STATUS_CODES if issubclass(c, errors.FaceServiceError)}
    | {NOT_READY_REASON, INTERNAL_REASON}
)

# The metrics of the server handling the request on this thread: one engine may serve
# several servers in a process (the tests do), and its observer files each stage under
# the right one.
_current: ContextVar[ServiceMetrics | None] = ContextVar("facesvc_metrics", default=None)


def observe_stage(stage: str, seconds: float) -> None:
    """The engine's StageObserver: one engine stage of the current request took `seconds`."""
    metrics = _current.get()
    if metrics is not None:
        metrics.stage_seconds.labels(stage).observe(seconds)


def upgrade_returned(
    method: str, upgrade: TemplateUpgrade | None, metrics: ServiceMetrics | None = None
) -> None:
    """A unary call returned an upgraded template (facesvc.engine.migration)."""
    metrics = metrics or _current.get()
    if metrics is not None and upgrade is not None:
        metrics.template_upgrades.labels(method, upgrade.from_model, upgrade.model).inc()


def session_upgrades(metrics: object, result: SessionResult) -> None:
    """A liveness session's result with an upgraded template (a stream has no _current)."""
    if not isinstance(metrics, ServiceMetrics):
        return
    for found in (result.verification, result.identification):
        if found is not None:
            upgrade_returned("CheckLiveness", found.upgrade, metrics)


class ServiceMetrics:
    """Every facesvc series, in a registry of its own (two servers in one process, as in
    the tests, never share a counter)."""

    def __init__(self, engine: FaceEngine, services: Mapping[str, Sequence[str]]) -> None:
        self._engine = engine
        self._build_info_set = False
        self.registry = CollectorRegistry()
        registry = self.registry
        grpc_labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", grpc_labels, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code (gRPC's name: OK, INVALID_ARGUMENT, ...).",
            [*grpc_labels, "grpc_code"],
            registry=registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the call reaching its handler to its status leaving it.",
            grpc_labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "facesvc_requests_in_flight",
            "Calls being handled now; calls queued for a free worker thread are not counted.",
            ["grpc_service", "grpc_method"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.rejections = Counter(
            "facesvc_rejections",
            "Calls refused with a google.rpc.ErrorInfo, by its reason (NO_FACE, LOW_QUALITY, ...).",
            ["grpc_method", "reason"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "facesvc_engine_stage_seconds",
            "Time per engine stage of one request: decode, detect, select, quality (with "
            "liveness), embed. A stage that refuses the request is not observed.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.build_info = Gauge(
            "facesvc_build_info",
            "Always 1; the labels name the running version, model and detector.",
            ["version", "model", "detector"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.serving = Gauge(
            "facesvc_serving",
            "1 while the standard health check says SERVING (models loaded, not shutting down); "
            "with several serving processes, how many of them do.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.model_load_seconds = Gauge(
            "facesvc_model_load_seconds",
            "Time to load the detector and model and run the warm-up inference.",
            multiprocess_mode="max",
            registry=registry,
        )
        self.worker_threads = Gauge(
            "facesvc_worker_threads",
            "Threads serving RPCs (FACESVC_WORKERS per process): the ceiling of in-flight calls.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.liveness_sessions = Counter(
            "facesvc_liveness_sessions",
            "Liveness sessions (CheckLiveness) ended, by outcome (PASSED, FAILED, REFUSED: ended "
            "by an error status, ABANDONED: the caller left) and reason (a LivenessFailure such "
            "as PROMPT_TIMEOUT, or the refusal's ErrorInfo reason).",
            ["outcome", "reason"],
            registry=registry,
        )
        self.liveness_frames = Histogram(
            "facesvc_liveness_frames_per_session",
            "Frames each ended liveness session received.",
            buckets=FRAME_COUNT_BUCKETS,
            registry=registry,
        )
        self.liveness_frame_seconds = Histogram(
            "facesvc_liveness_frame_seconds",
            "Server time from a liveness frame's arrival in the session to its feedback.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.template_upgrades = Counter(
            "facesvc_template_upgrades",
            "Upgraded templates returned during a model migration (docs/MODELS.md), by RPC, "
            "the model that confirmed the match and the model of the template returned.",
            ["method", "from_model", "model"],
            registry=registry,
        )
        ProcessCollector(registry=registry)
        self.worker_threads.set(engine.settings.worker_threads)
        if engine.ready:
            self._set_build_info()
        # Series that exist from the start, at zero, so that rate() and alerts see them at once.
        for service, methods in services.items():
            for method in methods:
                self.started.labels(UNARY, service, method)
                self.handled.labels(UNARY, service, method, "OK")
                self.latency.labels(UNARY, service, method)
                self.in_flight.labels(service, method)
                if service != _HEALTH_SERVICE:
                    # A series born at 1 hides its first event from increase(): start at 0.
                    for reason in REASONS:
                        self.rejections.labels(method, reason)
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        self.liveness_sessions.labels("PASSED", "")
        for failure in Failure:
            self.liveness_sessions.labels("FAILED", failure.value)

    def _set_build_info(self) -> None:
        # Once, with the loaded models' own names (a cleared series would linger in
        # multiprocess mode's files).
        if not self._build_info_set:
            info = self._engine.info()
            self.build_info.labels(__version__, info.model, info.detector).set(1)
            self._build_info_set = True

    def frame_processed(self, seconds: float) -> None:
        """One liveness frame's feedback took `seconds` (facesvc.engine.session.session)."""
        self.liveness_frame_seconds.observe(seconds)

    def session_ended(self, outcome: str, reason: str, frames: int) -> None:
        """A liveness session ended; refusals come with 0 frames and are not in the histogram."""
        self.liveness_sessions.labels(outcome, reason).inc()
        if outcome in ("PASSED", "FAILED"):
            self.liveness_frames.observe(frames)

    def set_serving(self, serving: bool) -> None:
        """Health changed; once serving, the engine has loaded and its names are final."""
        if serving:
            self._set_build_info()
            if self._engine.load_seconds is not None:
                self.model_load_seconds.set(self._engine.load_seconds)
        self.serving.set(1 if serving else 0)


class MetricsInterceptor(UnaryInterceptor[Token[ServiceMetrics | None]]):
    """Counts and times every unary call, and routes the engine's stage timings."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def before(self, call: Call, context: object) -> Token[ServiceMetrics | None]:
        self._metrics.started.labels(UNARY, call.service, call.method).inc()
        self._metrics.in_flight.labels(call.service, call.method).inc()
        return _current.set(self._metrics)

    def after(
        self, call: Call, context: object, state: Token[ServiceMetrics | None], outcome: Outcome
    ) -> None:
        _current.reset(state)
        metrics = self._metrics
        metrics.in_flight.labels(call.service, call.method).dec()
        metrics.handled.labels(UNARY, call.service, call.method, outcome.code.name).inc()
        metrics.latency.labels(UNARY, call.service, call.method).observe(outcome.seconds)
        if outcome.reason:
            metrics.rejections.labels(call.method, outcome.reason).inc()


class MetricsEndpoint:
    """The Prometheus HTTP endpoint (/metrics; any path answers), on a thread of its own."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        address = host.strip("[]")
        try:
            self._httpd, _ = start_http_server(port, addr=address, registry=registry)
        except OSError:
            if address != "::":
                raise
            # A host with IPv6 switched off: "every address" is then IPv4's.
            self._httpd, _ = start_http_server(port, addr="0.0.0.0", registry=registry)
        self.port: int = self._httpd.server_port
        log.info("metrics endpoint", extra={"metrics_port": self.port})

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def close_when(self, done: threading.Event) -> None:
        """Close once `done` is set (the gRPC server has drained), without blocking."""

        def close_after_drain() -> None:
            done.wait()
            self.close()

        threading.Thread(target=close_after_drain, name="facesvc-metrics-close", daemon=True).start()


class PodMetrics:
    """The series of several serving processes (facesvc.rpc.workers), summed by their
    supervisor on the one metrics port; does nothing when `port` is None.

    Enter it before forking the processes: their series then go to files in a private
    folder (prometheus-client's multiprocess mode). Call `serve()` once they are forked,
    so that no HTTP thread is running at the fork, and `process_ended()` for each that ends.
    Counters and histograms are added up; each gauge as its `multiprocess_mode` says."""

    def __init__(self, host: str, port: int | None) -> None:
        self._host, self._port = host, port
        self._directory: str | None = None
        self._previous: str | None = None
        self._endpoint: MetricsEndpoint | None = None

    def __enter__(self) -> PodMetrics:
        if self._port is not None:
            self._directory = tempfile.mkdtemp(prefix="facesvc-metrics-")
            self._previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = self._directory
            # Chosen when prometheus-client was imported: choose again, for this process
            # and the children it forks.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        return self

    def serve(self) -> None:
        if self._directory is not None and self._port is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._directory)  # type: ignore[no-untyped-call]
            self._endpoint = MetricsEndpoint(registry, self._host, self._port)

    def process_ended(self, pid: int) -> None:
        """Drop an ended process's live gauges (in flight, serving) from the sum."""
        if self._directory is not None:
            multiprocess.mark_process_dead(pid, self._directory)  # type: ignore[no-untyped-call]

    def __exit__(self, *exc_info: object) -> None:
        if self._directory is None:
            return
        if self._endpoint is not None:
            self._endpoint.close()
        if self._previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = self._previous
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        shutil.rmtree(self._directory, ignore_errors=True)
