"""FaceService: each RPC converts the request, calls the engine, converts the result."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from facesvc import __version__
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.session.session import LivenessSessions, SessionObserver
from facesvc.engine.templates import Templates
from facesvc.errors import LivenessSessionError, RequestAbandonedError
from facesvc.rpc import converters, metrics
from facesvc.rpc.auth import RelaxPolicy
from facesvc.rpc.guard import Guard, caller_gone, guarded, guarded_stream
from facesvc.rpc.wire import IdentifyCall, parse_identify
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["FaceService"]


class FaceServiceServicer(pb_grpc.FaceServiceServicer):
    """The facesvc.v1.FaceService implementation over one shared engine."""

    def __init__(
        self,
        engine: FaceEngine,
        is_serving: Callable[[], bool],
        guard: Guard | None = None,
        templates: Templates | None = None,
        session_metrics: SessionObserver | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._engine = engine
        # The server's settings (create_server's), which may differ from the engine's.
        settings = settings or engine.settings
        self.templates = templates or Templates.configured(
            settings.template_mode, settings.template_keys_file
        )
        self.guard = guard or Guard(settings)
        self.session_metrics = session_metrics
        self.failure_of = converters.failure_of
        self._sessions = LivenessSessions(engine, settings)
        self._is_serving = is_serving
        self._started_at = time.monotonic()
        settings = engine.settings
        self._relax = RelaxPolicy(
            [key.get_secret_value() for key in settings.presentation_attack_relax_keys],
            settings.presentation_attack_relax_anyone,
        )

    def _dimensions(self) -> int | dict[str, int]:
        """The embedding length of packed galleries: the serving model's, or per served model."""
        migration = self._engine.migration
        if migration is not None and migration.active:
            return {name: recognizer.dimension for name, recognizer in migration.served.items()}
        return self._engine.info().embedding_dim

    @guarded("Enroll")
    def Enroll(self, request: pb.EnrollRequest, context: grpc.ServicerContext) -> pb.EnrollResponse:
        result = self._engine.enroll(
            request.image,
            converters.face_selection(request.face_selection),
            caller_gone(context),
            converters.attack_mode(request.presentation_attack),
            self._relax.allows(context.invocation_metadata()),
            list(request.more_images),
            request.max_templates,
            min_quality=converters.optional_float(request, "min_quality"),
        )
        return converters.enrollment_to_proto(result, self.templates)

    @guarded("Verify")
    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        result = self._engine.verify(
            request.image,
            self.templates.stored(
                converters.stored_templates(request.stored_embeddings), "stored_embeddings"
            ),
            converters.optional_float(request, "threshold"),
            converters.face_selection(request.face_selection),
            caller_gone(context),
            converters.attack_mode(request.presentation_attack),
            self._relax.allows(context.invocation_metadata()),
            converters.optional_float(request, "far"),
            min_quality=converters.optional_float(request, "min_quality"),
        )
        metrics.upgrade_returned("Verify", result.upgrade)
        return converters.verification_to_proto(result, self.templates)

    @guarded("Identify")
    def Identify(self, call: IdentifyCall, context: grpc.ServicerContext) -> pb.IdentifyResponse:
        request = call.message  # parsed by facesvc.rpc.wire.parse_identify
        result = self._engine.identify(
            request.image,
            converters.gallery(call, self._dimensions(), self.templates),
            request.top_k,
            converters.optional_float(request, "threshold"),
            converters.face_selection(request.face_selection),
            caller_gone(context),
            converters.attack_mode(request.presentation_attack),
            self._relax.allows(context.invocation_metadata()),
            converters.optional_float(request, "far"),
            converters.optional_float(request, "fpir"),
            list(request.more_images),
            min_quality=converters.optional_float(request, "min_quality"),
        )
        metrics.upgrade_returned("Identify", result.upgrade)
        return converters.identification_to_proto(result, self.templates)

    @guarded("IdentifyFaces", audit=converters.group_audit)
    def IdentifyFaces(
        self, request: pb.IdentifyFacesRequest, context: grpc.ServicerContext
    ) -> pb.IdentifyFacesResponse:
        result = self._engine.identify_faces(
            request.image,
            converters.group_gallery(request, self._engine.info().embedding_dim, self.templates),
            request.top_k,
            converters.optional_float(request, "fpir"),
            request.max_faces,
            caller_gone(context),
            converters.attack_mode(request.presentation_attack),
            self._relax.allows(context.invocation_metadata()),
        )
        return converters.group_to_proto(result)

    @guarded_stream("CheckLiveness")
    def CheckLiveness(
        self, requests: Iterator[pb.CheckLivenessRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.CheckLivenessResponse]:
        incoming = _Incoming(requests)
        try:
            yield from self._session(incoming, context)
        finally:
            incoming.close()

    def _session(
        self, incoming: _Incoming, context: grpc.ServicerContext
    ) -> Iterator[pb.CheckLivenessResponse]:
        gone = caller_gone(context)
        first = incoming.next(self._sessions.policy.max_session_seconds)
        if first is None or first is _TIMEOUT or not first.HasField("start"):
            raise LivenessSessionError("The stream must open with a LivenessStart.")
        start = first.start
        session = self._sessions.open(
            converters.liveness_templates(start, self._dimensions(), self.templates),
            converters.face_selection(start.face_selection),
            start.frame_rate,
            self.session_metrics,
        )
        yield converters.started_to_proto(session.start())
        while True:
            remaining = context.time_remaining()
            wait = session.seconds_left() if remaining is None else min(remaining, session.seconds_left())
            request = incoming.next(max(wait, 0.0))
            if gone():
                raise RequestAbandonedError("the caller went away between frames")
            if request is _TIMEOUT:
                yield converters.result_to_proto(session.expire(), self.templates)
                return
            if request is None:
                yield converters.result_to_proto(session.stream_ended(), self.templates)
                return
            if not request.HasField("frame"):
                raise LivenessSessionError("Only frames may follow the LivenessStart.")
            outcome = session.frame(request.frame.image, request.frame.capture_time, gone)
            if outcome.result is not None:
                metrics.session_upgrades(self.session_metrics, outcome.result)
                yield converters.result_to_proto(outcome.result, self.templates)  # the frame's one answer
                return
            yield converters.feedback_to_proto(outcome.feedback)

    @guarded("Health", admit=False)
    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        info = self._engine.info()
        settings = self._engine.settings
        return pb.HealthResponse(
            status=pb.SERVING_STATUS_SERVING if self._is_serving() else pb.SERVING_STATUS_NOT_SERVING,
            model=info.model,
            embedding_dim=info.embedding_dim,
            detector=info.detector,
            threshold=info.threshold,
            version=__version__,
            uptime_seconds=time.monotonic() - self._started_at,
            distance_metric=info.distance_metric,
            default_face_selection=converters.face_selection_to_proto(settings.face_selection),
            quality_threshold=settings.quality_threshold,
            presentation_attack=pb.PresentationAttackInfo(
                mode=converters.attack_mode_to_proto(self._engine.attack_mode),
                enroll_mode=converters.attack_mode_to_proto(self._engine.enroll_attack_mode),
                threshold=settings.presentation_attack_threshold,
                model=info.attack_model,
                min_face_size=settings.presentation_attack_min_face_size,
                relaxable=self._relax.relaxable,
            ),
            templates=f"TEMPLATE_MODE_{self.templates.mode.name}",
            template_key_id=self.templates.current_key_id,
            operating_points=converters.operating_points_to_proto(info.operating_points),
            default_far=info.default_far,
            open_set=converters.open_set_to_proto(info.open_set),
            liveness_replayable=self._sessions.replayable,
            enroll_min_quality=settings.enroll_min_quality,
            probe_min_quality=settings.probe_min_quality,
            enroll_max_images=settings.enroll_max_images,
            enroll_max_templates=settings.enroll_max_templates,
            models=converters.models_to_proto(info.models),
        )

    @guarded("Reseal")
    def Reseal(self, request: pb.ResealRequest, context: grpc.ServicerContext) -> pb.ResealResponse:
        resealed, gallery = self.templates.reseal(
            converters.stored_templates(request.templates), self._engine.check_stored, list(request.ids)
        )
        return pb.ResealResponse(
            templates=[converters.template_to_proto(t) for t in resealed], packed_gallery=gallery
        )


_TIMEOUT: Any = object()


class _Incoming:
    """The kiosk's messages, read on a thread of their own so that a session whose kiosk
    stops sending still ends at its lifetime (grpc's request iterator blocks)."""

    def __init__(self, requests: Iterator[pb.CheckLivenessRequest]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(requests,), name="facesvc-liveness-read", daemon=True
        )
        self._thread.start()

    def _read(self, requests: Iterator[pb.CheckLivenessRequest]) -> None:
        try:
            for request in requests:
                if not self._put(request):
                    return
        except Exception:  # cancelled or broken stream: the handler sees the end
            pass
        self._put(None)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """The handler is done: the reader stops at its next message."""
        self._closed.set()

    def next(self, timeout: float) -> Any:
        """The next request, None at the stream's end, _TIMEOUT after `timeout` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return _TIMEOUT


def add_to_server(servicer: FaceServiceServicer, server: grpc.Server) -> None:
    """Register FaceService as the generated add_FaceServiceServicer_to_server does, with
    Identify's request parsed by facesvc.rpc.wire (a Candidate gallery as one matrix)."""
    handlers = {
        method.name: (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )(
            getattr(servicer, method.name),
            request_deserializer=(
                parse_identify
                if method.name == "Identify"
                else getattr(pb, method.input_type.name).FromString
            ),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in SERVICE.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
