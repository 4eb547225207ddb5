"""Domain errors: one class per rejection reason, carrying the figures that explain it.

Nothing here knows about gRPC; `facesvc.rpc.status` maps each class to a status
code. The `reason` strings are part of the public contract (ErrorInfo.reason).
"""

from __future__ import annotations

from collections.abc import Mapping


class FaceServiceError(Exception):
    """Base of every error a caller can cause; never raised for a bug."""

    reason = "UNKNOWN"
    #: Logged as suspicious activity (with the peer) when raised for a request.
    suspicious = False
    #: Counted against the caller as a failed attempt (FACESVC_FAILURE_THRESHOLD).
    failed_attempt = False

    def __init__(self, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: Mapping[str, str] = {key: _format(value) for key, value in metadata.items()}


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ImageUndecodableError(FaceServiceError):
    """The bytes are empty, not an image, or a truncated or corrupt one."""

    reason = "IMAGE_UNDECODABLE"
    suspicious = True


class ImageTooSmallError(FaceServiceError):
    """The image is smaller than the minimum size on one side."""

    reason = "IMAGE_TOO_SMALL"


class ImageTooLargeError(FaceServiceError):
    """The image is larger than the maximum size on one side."""

    reason = "IMAGE_TOO_LARGE"


class NoFaceError(FaceServiceError):
    """The detector found no face."""

    reason = "NO_FACE"
    suspicious = True


class MultipleFacesError(FaceServiceError):
    """Several comparable faces were found and the selection rejects that."""

    reason = "MULTIPLE_FACES"
    suspicious = True


class FaceTooSmallError(FaceServiceError):
    """The chosen face is smaller than the minimum face size."""

    reason = "FACE_TOO_SMALL"


class LowQualityError(FaceServiceError):
    """The chosen face's quality score is below the threshold."""

    reason = "LOW_QUALITY"
    suspicious = True


class IdentityUndecidedError(FaceServiceError):
    """Identify's best identity lies too near the open-set threshold to decide at the target
    FPIR (FACESVC_IDENTIFY_UNDECIDED_MARGIN): send another frame, or a burst."""

    reason = "IDENTITY_UNDECIDED"


class LivenessFailedError(FaceServiceError):
    """A basic liveness check failed."""

    reason = "LIVENESS_FAILED"
    suspicious = True
    failed_attempt = True


class PresentationAttackError(FaceServiceError):
    """The presentation-attack stage judged the face a print or a screen."""

    reason = "PRESENTATION_ATTACK"
    suspicious = True
    failed_attempt = True


class FaceNotScorableError(FaceServiceError):
    """The face is too small, cut off or too close for a trustworthy liveness score: retry."""

    reason = "FACE_NOT_SCORABLE"


class PresentationAttackRelaxDeniedError(FaceServiceError):
    """The request asked for a weaker presentation-attack mode than this caller may."""

    reason = "PRESENTATION_ATTACK_RELAX_DENIED"
    suspicious = True


class PresentationAttackUnavailableError(FaceServiceError):
    """The request asked for the presentation-attack stage, which this server runs with off."""

    reason = "PRESENTATION_ATTACK_UNAVAILABLE"


class EmbeddingInvalidError(FaceServiceError):
    """An embedding (or the gallery or threshold around it) cannot be used."""

    reason = "EMBEDDING_INVALID"


class EmbeddingModelMismatchError(FaceServiceError):
    """A stored embedding was made by another model than the one serving."""

    reason = "EMBEDDING_MODEL_MISMATCH"
    suspicious = True


class TemplateInvalidError(FaceServiceError):
    """A sealed template does not open (altered, another key, unknown key id), or a plain
    embedding was sent where only sealed templates are accepted."""

    reason = "TEMPLATE_INVALID"
    suspicious = True


class SealingUnavailableError(FaceServiceError):
    """Sealing was asked of a service that has no template key."""

    reason = "SEALING_UNAVAILABLE"


class MessageTooLargeError(FaceServiceError):
    """The request message is larger than FACESVC_MAX_MESSAGE_BYTES."""

    reason = "MESSAGE_TOO_LARGE"


class OverloadedError(FaceServiceError):
    """More requests are in progress than FACESVC_MAX_CONCURRENT_RPCS allows: retry later."""

    reason = "OVERLOADED"


class CallerThrottledError(FaceServiceError):
    """This caller failed too often recently and is held off for a while."""

    reason = "CALLER_THROTTLED"


class UnauthenticatedError(FaceServiceError):
    """No API key, or one the service does not know."""

    reason = "UNAUTHENTICATED"
    suspicious = True


class LivenessSessionError(FaceServiceError):
    """A liveness stream broke the protocol: no LivenessStart first, a second one, a frame
    over the size limit, a frame rate outside the allowed range."""

    reason = "LIVENESS_SESSION_INVALID"
    suspicious = True


class TooManyImagesError(FaceServiceError):
    """An Enroll sent more photos than FACESVC_ENROLL_MAX_IMAGES."""

    reason = "TOO_MANY_IMAGES"


class DifferentPeopleError(FaceServiceError):
    """One of an Enroll's photos (metadata image_index) is not of the person in the others."""

    reason = "DIFFERENT_PEOPLE"
    suspicious = True


class RequestInvalidError(FaceServiceError):
    """An HTTP request body that is not the RPC's request message in protobuf's JSON
    mapping (or a form field that is not what the endpoint reads); gRPC callers cannot
    send one, their stubs encode the message."""

    reason = "REQUEST_INVALID"


class RequestAbandonedError(Exception):
    """The caller cancelled or its deadline passed; the work stopped at a stage boundary."""


class EngineNotReadyError(Exception):
    """The engine has not finished loading its models (or is shutting down)."""


class ModelUnavailableError(RuntimeError):
    """A configured model's weights cannot be had; raised at start-up, never per request."""
