"""The SDK's exceptions: one class per rejection reason of the service, under FaceServiceError.

The service ends every rejected call with a status code and a google.rpc.ErrorInfo
(domain "facesvc") whose `reason` names the problem and whose `metadata` holds the
figures that explain it. The SDK turns that into the matching class below, so callers
write `except NoFaceError` instead of parsing trailers; no grpc.RpcError escapes.

    FaceServiceError
    ├── InvalidArgumentError            INVALID_ARGUMENT
    │   ├── ImageRejectedError          the photo cannot be used: ask for another
    │   │   ├── ImageUndecodableError   IMAGE_UNDECODABLE
    │   │   ├── ImageTooSmallError      IMAGE_TOO_SMALL
    │   │   ├── ImageTooLargeError      IMAGE_TOO_LARGE
    │   │   ├── NoFaceError             NO_FACE
    │   │   ├── MultipleFacesError      MULTIPLE_FACES
    │   │   ├── FaceTooSmallError       FACE_TOO_SMALL
    │   │   ├── LowQualityError         LOW_QUALITY
    │   │   ├── LivenessFailedError     LIVENESS_FAILED
    │   │   ├── PresentationAttackError PRESENTATION_ATTACK (a print or a screen)
    │   │   ├── FaceNotScorableError    FACE_NOT_SCORABLE (move and retry)
    │   │   └── IdentityUndecidedError  IDENTITY_UNDECIDED (send another frame)
    │   ├── EmbeddingInvalidError       EMBEDDING_INVALID
    │   ├── EmbeddingModelMismatchError EMBEDDING_MODEL_MISMATCH
    │   └── TemplateInvalidError        TEMPLATE_INVALID
    ├── ServiceUnavailableError         UNAVAILABLE (retried by the SDK)
    │   ├── EngineNotReadyError         ENGINE_NOT_READY
    │   └── LivenessSessionLostError    a started session's replica went away: start again
    ├── DeadlineExceededError           DEADLINE_EXCEEDED (also a TimeoutError)
    ├── RequestTooLargeError            MESSAGE_TOO_LARGE (RESOURCE_EXHAUSTED)
    ├── AuthenticationError             UNAUTHENTICATED, PERMISSION_DENIED
    │   └── PresentationAttackRelaxDeniedError
    │                                   PRESENTATION_ATTACK_RELAX_DENIED
    ├── FailedPreconditionError         FAILED_PRECONDITION
    │   ├── PresentationAttackUnavailableError
    │   │                               PRESENTATION_ATTACK_UNAVAILABLE
    │   └── SealingUnavailableError     SEALING_UNAVAILABLE
    └── InternalError                   INTERNAL
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

#: The ErrorInfo domain of the service's own reasons.
DOMAIN = "facesvc"


class StatusCode(enum.StrEnum):
    """gRPC status codes by name, so callers need not import grpc."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class FaceServiceError(Exception):
    """A call to the service failed; base of every exception the SDK raises for one."""

    #: The ErrorInfo reason this class stands for (None for the classes picked by code).
    REASON: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: StatusCode,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: The gRPC status code.
        self.code = code
        #: The ErrorInfo reason, e.g. "NO_FACE"; None when the status carried none (a
        #: transport failure, a proxy in between).
        self.reason = reason
        #: The figures that explain the rejection, e.g. {"face_count": "2"}.
        self.metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))
        #: The RPC that failed: "Enroll", "Verify", "Identify" or "Health".
        self.method = method

    def _figure(self, key: str) -> float | None:
        """A numeric metadata entry, or None when absent or not a number."""
        try:
            return float(self.metadata[key])
        except (KeyError, ValueError):
            return None

    def __str__(self) -> str:
        figures = ", ".join(f"{key}={value}" for key, value in sorted(self.metadata.items()))
        label = self.reason or self.code.value
        return f"{label}: {self.message}" + (f" ({figures})" if figures else "")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.value}, reason={self.reason!r}, "
            f"message={self.message!r}, metadata={dict(self.metadata)!r}, method={self.method!r})"
        )


class InvalidArgumentError(FaceServiceError):
    """The request was refused as invalid (INVALID_ARGUMENT); retrying it will not help."""


class ImageRejectedError(InvalidArgumentError):
    """The photo cannot be used; ask the person for another one."""


class ImageUndecodableError(ImageRejectedError):
    """The bytes are empty, not an image, or a truncated or corrupt one."""

    REASON = "IMAGE_UNDECODABLE"


class ImageTooSmallError(ImageRejectedError):
    """The image is smaller than the service's minimum size on one side."""

    REASON = "IMAGE_TOO_SMALL"


class ImageTooLargeError(ImageRejectedError):
    """The image is larger than the service's maximum size on one side."""

    REASON = "IMAGE_TOO_LARGE"


class NoFaceError(ImageRejectedError):
    """No face was found."""

    REASON = "NO_FACE"


class MultipleFacesError(ImageRejectedError):
    """Several comparable faces were found; pass face_selection to take one of them."""

    REASON = "MULTIPLE_FACES"


class FaceTooSmallError(ImageRejectedError):
    """The chosen face is smaller than the service's minimum face size."""

    REASON = "FACE_TOO_SMALL"


class LowQualityError(ImageRejectedError):
    """The face's quality score is below the service's threshold."""

    REASON = "LOW_QUALITY"


class DifferentPeopleError(ImageRejectedError):
    """One of an enrolment's photos (metadata image_index) shows someone else."""

    REASON = "DIFFERENT_PEOPLE"


class TooManyImagesError(ImageRejectedError):
    """More photos in one enrolment than the service takes (Health.enroll_max_images)."""

    REASON = "TOO_MANY_IMAGES"


class LivenessFailedError(ImageRejectedError):
    """A basic liveness check failed (blur, lighting, size or implausible geometry)."""

    REASON = "LIVENESS_FAILED"


class PresentationAttackError(ImageRejectedError):
    """The presentation-attack stage took the face for a print or a screen held to the
    camera (raised where the stage is enforced: by default Verify and Identify)."""

    REASON = "PRESENTATION_ATTACK"

    @property
    def live_score(self) -> float | None:
        """The face's live score, 0-1 (below `threshold`)."""
        return self._figure("live_score")

    @property
    def threshold(self) -> float | None:
        """The live score a live face reaches."""
        return self._figure("threshold")

    @property
    def model(self) -> str | None:
        """The models that judged the face."""
        return self.metadata.get("model")


class FaceNotScorableError(ImageRejectedError):
    """The face is too small, cut off by the frame's edge or too close to the camera for
    the presentation-attack stage to judge it; never passed as live. Ask the person to
    move (step back, come closer, centre the face) and retry."""

    REASON = "FACE_NOT_SCORABLE"

    @property
    def cause(self) -> str | None:
        """ "too_small", "cut_off" or "too_close"."""
        return self.metadata.get("cause")

    @property
    def face_size(self) -> float | None:
        """The face's size in pixels."""
        return self._figure("face_size")

    @property
    def min_face_size(self) -> float | None:
        """The smallest face, in pixels, the stage judges."""
        return self._figure("min_face_size")


class IdentityUndecidedError(ImageRejectedError):
    """Identify's best identity lay too near the threshold to decide at the target FPIR (a
    service with FACESVC_IDENTIFY_UNDECIDED_MARGIN): send another frame, or a burst."""

    REASON = "IDENTITY_UNDECIDED"

    @property
    def distance(self) -> float | None:
        """The best identity's distance."""
        return self._figure("distance")

    @property
    def threshold(self) -> float | None:
        """The open-set threshold it was near."""
        return self._figure("threshold")


class EmbeddingInvalidError(InvalidArgumentError):
    """A stored embedding, the gallery, top_k or the threshold cannot be used."""

    REASON = "EMBEDDING_INVALID"


class EmbeddingModelMismatchError(InvalidArgumentError):
    """A stored embedding was made by another model than the one serving."""

    REASON = "EMBEDDING_MODEL_MISMATCH"


class TemplateInvalidError(InvalidArgumentError):
    """A sealed template does not open (altered, truncated, another deployment's key, an
    unknown key id: metadata `problem`, `index`, `key_id`), or a plain embedding was sent
    to a service that accepts sealed templates only."""

    REASON = "TEMPLATE_INVALID"


class LivenessSessionInvalidError(InvalidArgumentError):
    """check_liveness: the stream broke the protocol (a frame over the size limit, a frame
    rate outside the service's range). A FAILED session is a result, not this error."""

    REASON = "LIVENESS_SESSION_INVALID"


class ServiceUnavailableError(FaceServiceError):
    """The service cannot be reached, or is starting or stopping (UNAVAILABLE).
    Raised once the SDK's retries are spent."""


class EngineNotReadyError(ServiceUnavailableError):
    """The service is up but still loading its models, or shutting down."""

    REASON = "ENGINE_NOT_READY"


class LivenessSessionLostError(ServiceUnavailableError):
    """check_liveness: the replica serving a session that had started went away (it was
    stopped and its grace ran out, it crashed, the network broke). The frames sent are
    lost with it and a session cannot move to another replica: start a new session
    (prompt the person again); the SDK sends it to a replica that is up. Raised by the
    SDK, not the service (`reason` is None, `code` the transport's)."""


class DeadlineExceededError(FaceServiceError, TimeoutError):
    """The call did not finish within its deadline (DEADLINE_EXCEEDED)."""


class RequestTooLargeError(FaceServiceError):
    """The request exceeds the service's message limit (RESOURCE_EXHAUSTED, reason
    MESSAGE_TOO_LARGE; older services send no reason)."""

    REASON = "MESSAGE_TOO_LARGE"


class AuthenticationError(FaceServiceError):
    """The API key was missing or refused (UNAUTHENTICATED, PERMISSION_DENIED), e.g. by a
    gateway in front of the service, or it may not do what the request asked."""


class PresentationAttackRelaxDeniedError(AuthenticationError):
    """The call asked for a weaker presentation-attack mode than the server's default for
    that RPC (e.g. OFF or REPORT on Verify), and this caller may not relax it: the server
    allows that only for its relax keys or FACESVC_PRESENTATION_ATTACK_RELAX_ANYONE."""

    REASON = "PRESENTATION_ATTACK_RELAX_DENIED"


class FailedPreconditionError(FaceServiceError):
    """The service is not configured for what the call asked (FAILED_PRECONDITION)."""


class SealingUnavailableError(FailedPreconditionError):
    """`reseal` or `seal_gallery` was asked of a service that has no template key."""

    REASON = "SEALING_UNAVAILABLE"


class PresentationAttackUnavailableError(FailedPreconditionError):
    """The call asked for the presentation-attack stage (REPORT or ENFORCE), which this
    server runs with off for every RPC, its model not loaded (FACESVC_PRESENTATION_ATTACK
    and FACESVC_PRESENTATION_ATTACK_ENROLL both off)."""

    REASON = "PRESENTATION_ATTACK_UNAVAILABLE"


class InternalError(FaceServiceError):
    """A bug in the service (INTERNAL); the cause is in the service's log, not here."""

    REASON = "INTERNAL"


_BY_REASON: Mapping[str, type[FaceServiceError]] = {
    cls.REASON: cls
    for cls in (
        ImageUndecodableError,
        ImageTooSmallError,
        ImageTooLargeError,
        NoFaceError,
        MultipleFacesError,
        FaceTooSmallError,
        LowQualityError,
        LivenessFailedError,
        DifferentPeopleError,
        TooManyImagesError,
        PresentationAttackError,
        FaceNotScorableError,
        IdentityUndecidedError,
        EmbeddingInvalidError,
        EmbeddingModelMismatchError,
        TemplateInvalidError,
        SealingUnavailableError,
        LivenessSessionInvalidError,
        EngineNotReadyError,
        PresentationAttackRelaxDeniedError,
        PresentationAttackUnavailableError,
        RequestTooLargeError,
        InternalError,
    )
    if cls.REASON is not None
}

_BY_CODE: Mapping[StatusCode, type[FaceServiceError]] = {
    StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    StatusCode.UNAVAILABLE: ServiceUnavailableError,
    StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    StatusCode.RESOURCE_EXHAUSTED: RequestTooLargeError,
    StatusCode.UNAUTHENTICATED: AuthenticationError,
    StatusCode.PERMISSION_DENIED: AuthenticationError,
    StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    StatusCode.INTERNAL: InternalError,
}


def error_for(
    code: StatusCode,
    message: str,
    reason: str | None = None,
    metadata: Mapping[str, str] | None = None,
    domain: str | None = DOMAIN,
    method: str | None = None,
) -> FaceServiceError:
    """The exception for a failed call: by the service's reason when it gave one, else by code."""
    cls = (_BY_REASON.get(reason) if reason and domain == DOMAIN else None) or _BY_CODE.get(
        code, FaceServiceError
    )
    return cls(message, code=code, reason=reason, metadata=metadata, method=method)
