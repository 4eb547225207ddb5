"""The one table that turns domain errors into gRPC status codes with a google.rpc.ErrorInfo."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from facesvc import errors

DOMAIN = "facesvc"

#: Every error a caller can cause, and its status code. Anything else is INTERNAL.
STATUS_CODES: Mapping[type[Exception], grpc.StatusCode] = {
    errors.ImageUndecodableError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ImageTooSmallError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ImageTooLargeError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NoFaceError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.MultipleFacesError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FaceTooSmallError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.LowQualityError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.IdentityUndecidedError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.LivenessFailedError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PresentationAttackError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FaceNotScorableError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PresentationAttackRelaxDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.PresentationAttackUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.EmbeddingInvalidError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.EmbeddingModelMismatchError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TemplateInvalidError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.SealingUnavailableError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.LivenessSessionError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RequestInvalidError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TooManyImagesError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.DifferentPeopleError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.MessageTooLargeError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.CallerThrottledError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.EngineNotReadyError: grpc.StatusCode.UNAVAILABLE,
}

NOT_READY_REASON = "ENGINE_NOT_READY"
INTERNAL_REASON = "INTERNAL"


def status_for(error: Exception) -> grpc.Status:
    """The gRPC status (code, message, ErrorInfo detail) a caller sees for `error`."""
    code = STATUS_CODES.get(type(error), grpc.StatusCode.INTERNAL)
    if isinstance(error, errors.FaceServiceError):
        reason, message, metadata = error.reason, error.message, dict(error.metadata)
    elif code is grpc.StatusCode.UNAVAILABLE:
        reason, message, metadata = (
            NOT_READY_REASON,
            "The service is starting or stopping; retry shortly.",
            {},
        )
    else:
        # Never echo a bug's text to the caller: it may hold internals.
        reason, message, metadata = INTERNAL_REASON, "Internal error; it has been logged.", {}
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata))
    status = status_pb2.Status(code=code_pb2.Code.Value(code.name), message=message, details=[detail])
    return rpc_status.to_status(status)


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a google.rpc.Status carries (reason and metadata), None when none."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
