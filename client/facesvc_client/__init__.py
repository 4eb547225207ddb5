"""facesvc-client: the Python SDK for facesvc, the face enrollment and verification service.

    from facesvc_client import FaceClient, NoFaceError

    with FaceClient("localhost:50051") as client:
        stored = client.enroll("alice.jpg").embedding      # keep stored.to_json()
        print(client.verify("door-camera.jpg", stored).match)

Results are frozen dataclasses, failures are FaceServiceError subclasses (one per
rejection reason); grpc and protobuf types stay inside the SDK.
"""

from facesvc_client._transport import DEFAULT_TARGET, DEFAULT_TIMEOUT, RetryPolicy, TLSConfig
from facesvc_client._version import __version__
from facesvc_client.aio import AsyncFaceClient
from facesvc_client.client import FaceClient
from facesvc_client.errors import (
    AuthenticationError,
    DeadlineExceededError,
    EmbeddingInvalidError,
    EmbeddingModelMismatchError,
    EngineNotReadyError,
    FaceNotScorableError,
    FaceServiceError,
    FaceTooSmallError,
    FailedPreconditionError,
    ImageRejectedError,
    ImageTooLargeError,
    ImageTooSmallError,
    ImageUndecodableError,
    InternalError,
    InvalidArgumentError,
    LivenessFailedError,
    LowQualityError,
    MultipleFacesError,
    NoFaceError,
    PresentationAttackError,
    PresentationAttackRelaxDeniedError,
    PresentationAttackUnavailableError,
    RequestTooLargeError,
    ServiceUnavailableError,
    StatusCode,
)
from facesvc_client.types import (
    BoundingBox,
    Candidate,
    Embedding,
    EnrollResult,
    Face,
    FaceSelection,
    Health,
    IdentifyResult,
    IdentityMatch,
    Landmarks,
    LivenessCheck,
    Point,
    PresentationAttackInfo,
    PresentationAttackMode,
    Quality,
    ServingStatus,
    VerifyResult,
)

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "AsyncFaceClient",
    "AuthenticationError",
    "BoundingBox",
    "Candidate",
    "DeadlineExceededError",
    "Embedding",
    "EmbeddingInvalidError",
    "EmbeddingModelMismatchError",
    "EngineNotReadyError",
    "EnrollResult",
    "Face",
    "FaceClient",
    "FaceNotScorableError",
    "FaceSelection",
    "FaceServiceError",
    "FaceTooSmallError",
    "FailedPreconditionError",
    "Health",
    "IdentifyResult",
    "IdentityMatch",
    "ImageRejectedError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "ImageUndecodableError",
    "InternalError",
    "InvalidArgumentError",
    "Landmarks",
    "LivenessCheck",
    "LivenessFailedError",
    "LowQualityError",
    "MultipleFacesError",
    "NoFaceError",
    "Point",
    "PresentationAttackError",
    "PresentationAttackInfo",
    "PresentationAttackMode",
    "PresentationAttackRelaxDeniedError",
    "PresentationAttackUnavailableError",
    "Quality",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "ServingStatus",
    "StatusCode",
    "TLSConfig",
    "VerifyResult",
    "__version__",
]
