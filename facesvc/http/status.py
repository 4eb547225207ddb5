"""gRPC statuses as HTTP answers: the code gRPC's HTTP mapping gives each status code,
and the google.rpc.Status as JSON (with its ErrorInfo reason)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from facesvc.rpc.status import error_info

# The Any in Status.details must resolve ErrorInfo by its type URL.
_ = error_details_pb2.ErrorInfo

#: google.rpc.Code -> HTTP status, as google/rpc/code.proto and grpc-gateway map them.
HTTP_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

#: Reasons whose HTTP code is not their gRPC code's: RESOURCE_EXHAUSTED is 429 (retry
#: later) for overload, but a body too large must not be retried as it is (nginx, Envoy).
HTTP_CODES_BY_REASON: dict[str, int] = {"MESSAGE_TOO_LARGE": 413}
#: Seconds a 429 asks the caller to wait before retrying (Retry-After).
RETRY_AFTER_SECONDS = 1


def code_of(status: status_pb2.Status) -> grpc.StatusCode:
    return _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)


def http_code(status: status_pb2.Status) -> int:
    return HTTP_CODES_BY_REASON.get(reason_of(status)) or HTTP_CODES[code_of(status)]


def refusal_headers(status: status_pb2.Status) -> dict[str, str]:
    """Retry-After on a 429 (overload, a throttled caller): the one refusal to retry."""
    return {"retry-after": str(RETRY_AFTER_SECONDS)} if http_code(status) == 429 else {}


def status_json(status: status_pb2.Status) -> dict[str, Any]:
    """The google.rpc.Status in protobuf's JSON mapping: code, message, details (ErrorInfo)."""
    return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)


def reason_of(status: status_pb2.Status) -> str:
    """The ErrorInfo reason a status carries ("" when none)."""
    info = error_info(status)
    return str(info.reason) if info is not None else ""


def metadata_of(status: status_pb2.Status) -> dict[str, str]:
    """The ErrorInfo metadata a status carries."""
    info = error_info(status)
    return dict(info.metadata) if info is not None else {}
