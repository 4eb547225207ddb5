"""FaceClient: the blocking client. Every call has a deadline, UNAVAILABLE is retried with
back-off, and failures surface as the SDK's exceptions, never as grpc.RpcError."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from facesvc_client import _convert, _transport, liveness
from facesvc_client._convert import GalleryInput, ImageInput, StoredInput
from facesvc_client._proto import face_service_pb2 as pb
from facesvc_client._proto import face_service_pb2_grpc as pb_grpc
from facesvc_client._transport import DEFAULT_TARGET, DEFAULT_TIMEOUT, RetryPolicy, TLSConfig
from facesvc_client.errors import DeadlineExceededError, StatusCode
from facesvc_client.liveness import FrameInput, LivenessEvent, LivenessResult
from facesvc_client.types import (
    EnrollResult,
    FaceSelection,
    Health,
    IdentifyFacesResult,
    IdentifyResult,
    PresentationAttackMode,
    SealedGallery,
    SealedTemplate,
    Template,
    VerifyResult,
)


class FaceClient:
    """A connection to facesvc. Thread-safe; make one and share it.

    `target` is one gRPC target ("localhost:50051", or "dns:///facesvc.internal:50051" to
    spread calls over every address the name resolves to), or a list of targets (one per
    replica). Calls go in turn to the targets whose connection is READY; one that failed
    is skipped until it reconnects. A call failed as UNAVAILABLE (its replica stopped,
    died or is still loading) is retried on another target, at once when one is READY,
    then with back-off, all within its deadline. Every RPC is idempotent, so this loses
    no call while one replica is up; a liveness session is retried only until it started
    (then LivenessSessionLostError: start another).
    `timeout` is each call's deadline in seconds, retries included; `retries` is a
    RetryPolicy or a number of retries. `api_key` is sent as `x-api-key` metadata.
    `tls` is True (system roots) or a TLSConfig; None means plaintext.
    """

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        api_key: str | None = None,
        tls: bool | TLSConfig | None = None,
        retries: RetryPolicy | int = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.retry_policy = RetryPolicy.of(retries)
        self._metadata = _transport.call_metadata(api_key)
        self._closed = False
        tls_config = _transport.tls_of(tls)
        channel_options = _transport.channel_options(tls_config, options)
        self._channels = [
            grpc.secure_channel(t, _transport.credentials(tls_config), channel_options)
            if tls_config
            else grpc.insecure_channel(t, channel_options)
            for t in _transport.targets_of(target)
        ]
        self._stubs = [pb_grpc.FaceServiceStub(channel) for channel in self._channels]  # type: ignore[no-untyped-call]
        self._connectivity = _transport.Connectivity(self._channels)
        self._replicas = _transport.Replicas(len(self._channels), self._connectivity.state_of)

    # ---- the four RPCs ------------------------------------------------------------------

    def enroll(
        self,
        image: ImageInput,
        *,
        face_selection: FaceSelection | None = None,
        presentation_attack: PresentationAttackMode | None = None,
        timeout: float | None = None,
        min_quality: float | None = None,
        more_images: Sequence[ImageInput] = (),
        max_templates: int = 0,
    ) -> EnrollResult:
        """Detect the one face in a photo and return its embedding for you to store.
        With `more_images` (further photos of the same person), the result's `templates`
        holds up to `max_templates` (0: 3) of them, best first: store them all
        (DifferentPeopleError names a photo of someone else in metadata image_index).

        Raises an ImageRejectedError subclass (NoFaceError, MultipleFacesError,
        LowQualityError, ...) when the photo cannot be used. `presentation_attack` sets
        the presentation-attack stage for this call (None: the server's Enroll default,
        REPORT unless configured); ENFORCE is always allowed, and a weaker mode than the
        default raises PresentationAttackRelaxDeniedError unless the server lets this
        caller relax it. `min_quality` (0-100) refuses a face whose unified quality is below
        it (LowQualityError naming the weakest component; None: the server's default)."""
        request = _convert.enroll_request(
            _convert.read_image(image),
            face_selection,
            presentation_attack,
            min_quality,
            [_convert.read_image(m) for m in more_images],
            max_templates,
        )
        return _convert.enroll_result(self._call("Enroll", request, timeout))

    def verify(
        self,
        image: ImageInput,
        stored: StoredInput,
        *,
        threshold: float | None = None,
        face_selection: FaceSelection | None = None,
        presentation_attack: PresentationAttackMode | None = None,
        timeout: float | None = None,
        far: float | None = None,
        min_quality: float | None = None,
    ) -> VerifyResult:
        """Compare the face in a live photo with one or more stored embeddings of one person;
        the closest decides. `threshold` overrides the service's distance threshold; `far`
        picks one of its published operating points instead (see `health().operating_points`).

        The server's default presentation-attack mode here is ENFORCE: a print or a screen
        raises PresentationAttackError, a face too small or cut off for that stage
        FaceNotScorableError (ask the person to move and retry). `presentation_attack`
        asks for another mode, as in `enroll`. `min_quality` refuses a probe below that unified
        quality (LowQualityError: ask for another frame; None: the server's default)."""
        request = _convert.verify_request(
            _convert.read_image(image),
            stored,
            threshold,
            face_selection,
            presentation_attack,
            far,
            min_quality,
        )
        return _convert.verify_result(self._call("Verify", request, timeout))

    def identify(
        self,
        image: ImageInput,
        candidates: GalleryInput,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        face_selection: FaceSelection | None = None,
        presentation_attack: PresentationAttackMode | None = None,
        timeout: float | None = None,
        far: float | None = None,
        fpir: float | None = None,
        more_images: Sequence[ImageInput] = (),
        min_quality: float | None = None,
    ) -> IdentifyResult:
        """Find who a live photo shows among `candidates` in one call: a mapping of id to
        one or more embeddings, or Candidate values. Returns the top_k closest identities.
        The presentation-attack stage is enforced by default, as in `verify`.

        Unless `threshold` or `far` is given, the service's open-set rule decides: the
        threshold follows the gallery's number of distinct identities so that a stranger is
        answered with a match at most at rate `fpir` (a published point, Health.open_set;
        default the service's, 1%). `more_images`: up to 4 more frames of the same person
        (a kiosk's burst), decided together with `image` (fewer people not found)."""
        request = _convert.identify_request(
            _convert.read_image(image),
            candidates,
            top_k,
            threshold,
            face_selection,
            presentation_attack,
            far,
            fpir,
            [_convert.read_image(more) for more in more_images],
            min_quality,
        )
        return _convert.identify_result(self._call("Identify", request, timeout))

    def identify_faces(
        self,
        image: ImageInput,
        candidates: GalleryInput,
        *,
        top_k: int = 1,
        max_faces: int = 0,
        presentation_attack: PresentationAttackMode | None = None,
        timeout: float | None = None,
        fpir: float | None = None,
    ) -> IdentifyFacesResult:
        """Find everyone a group photo (a class, a meeting) shows among `candidates`, in one
        call: every face, largest first, up to `max_faces` (0: the service's cap), each with
        its own matches under the open-set rule, or its refusal (too small, cut off, ...).
        Each identity is given to at most one face of the photo. A photo without any face
        raises NoFaceError. The presentation-attack mode is the service's default for
        Identify (under ENFORCE, faces too small for that stage come back NOT_SCORABLE)."""
        request = _convert.identify_faces_request(
            _convert.read_image(image), candidates, top_k, presentation_attack, fpir, max_faces
        )
        return _convert.identify_faces_result(self._call("IdentifyFaces", request, timeout))

    def reseal(self, templates: Sequence[Template], *, timeout: float | None = None) -> list[SealedTemplate]:
        """The templates sealed under the service's current key, in the same order: sealed
        ones moved from an older key, plain ones sealed for the first time. No photo is
        needed; migrate a table in batches (a few thousand per call)."""
        return _convert.reseal_result(self._call("Reseal", _convert.reseal_request(templates), timeout))

    def seal_gallery(self, candidates: GalleryInput, *, timeout: float | None = None) -> SealedGallery:
        """The whole gallery (plain or sealed templates, as for `identify`) sealed by the
        service as one blob: pass it to `identify` in place of the templates; opening it
        costs one decryption instead of one per template."""
        response = self._call("Reseal", _convert.seal_gallery_request(candidates), timeout)
        return SealedGallery(response.packed_gallery)

    def health(self, *, timeout: float | None = None) -> Health:
        """The serving model and configuration. A service still loading answers with
        status NOT_SERVING rather than an error."""
        return _convert.health_result(self._call("Health", pb.HealthRequest(), timeout))

    def check_liveness(
        self,
        frames: Iterable[FrameInput],
        *,
        stored: StoredInput | None = None,
        candidates: GalleryInput | None = None,
        top_k: int = 1,
        threshold: float | None = None,
        face_selection: FaceSelection | None = None,
        frame_rate: float = 15.0,
        on_event: Callable[[LivenessEvent], None] | None = None,
        timeout: float = 60.0,
        max_templates: int = 0,
    ) -> LivenessResult:
        """Run one liveness session: `frames` is any iterator of camera frames (a camera
        loop; see LivenessFrame for capture times). `on_event` gets the LivenessStarted and
        each LivenessFeedback as they come: show their prompt and advice. The SDK takes the
        next frame only after the last one's feedback. Returns the LivenessResult (PASSED
        or FAILED with its reason); `stored` ends it with a Verify result, `candidates`
        with an Identify result. Raises the SDK's errors when the stream is refused
        (OVERLOADED and CALLER_THROTTLED as RequestTooLargeError's parent class,
        ImageUndecodableError for a frame that is not an image, ...). A session refused as
        UNAVAILABLE before it started is retried on another replica (no frame was taken
        yet); one whose replica goes away once started raises LivenessSessionLostError:
        start a new session (the person begins again). `max_templates` (> 0) enrols from
        the session: on PASSED the result's `templates` holds up to that many templates
        chosen from its frames (capped by Health.enroll_max_templates)."""
        start = liveness.start_request(
            stored, candidates, top_k, threshold, face_selection, frame_rate, max_templates
        )
        deadline = time.monotonic() + timeout
        attempts = self.retry_policy.attempts
        tried: set[int] = set()
        for attempt in range(1, attempts + 1):
            index = self._replicas.pick(frozenset(tried))
            stub = self._stubs[index]
            progress = liveness.Progress()
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return liveness.run_session(
                    functools.partial(stub.CheckLiveness, timeout=remaining, metadata=self._metadata),
                    start,
                    frames,
                    on_event,
                    progress,
                )
            except grpc.RpcError as rpc_error:
                failure = _transport.error_from_rpc(rpc_error, "CheckLiveness")
            if progress.started:
                raise liveness.lost_or(failure)
            tried.add(index)
            delay = _transport.retry_delay(
                self.retry_policy, attempt, self._replicas.ready_besides(frozenset(tried))
            )
            if not _transport.retryable(failure, attempt, attempts, delay, deadline, self._closed):
                raise failure
            _transport.log_retry("CheckLiveness", failure, attempt, attempts, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        self._closed = True
        self._connectivity.close()
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # ---- one call, with deadline and retries ----------------------------------------------

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        attempts = self.retry_policy.attempts
        tried: set[int] = set()
        for attempt in range(1, attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    f"no time left of the {budget:g} s deadline",
                    code=StatusCode.DEADLINE_EXCEEDED,
                    method=method,
                )
            index = self._replicas.pick(frozenset(tried))
            try:
                return getattr(self._stubs[index], method)(
                    request, timeout=remaining, metadata=self._metadata
                )
            except grpc.RpcError as rpc_error:
                failure = _transport.error_from_rpc(rpc_error, method)
            tried.add(index)
            delay = _transport.retry_delay(
                self.retry_policy, attempt, self._replicas.ready_besides(frozenset(tried))
            )
            if not _transport.retryable(failure, attempt, attempts, delay, deadline, self._closed):
                raise failure
            _transport.log_retry(method, failure, attempt, attempts, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
