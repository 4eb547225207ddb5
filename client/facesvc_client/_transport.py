"""What the sync and async clients share about the wire: channels, retries, and turning a
failed call into the SDK's exception. The only module besides the clients that imports grpc."""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from facesvc_client._version import __version__
from facesvc_client.errors import FaceServiceError, ServiceUnavailableError, StatusCode, error_for

log = logging.getLogger("facesvc_client")

DEFAULT_TARGET = "localhost:50051"
#: Seconds a call may take, retries and their back-off included.
DEFAULT_TIMEOUT = 10.0
#: Metadata key carrying `api_key`; the service itself does not check it, a gateway does.
API_KEY_HEADER = "x-api-key"
#: The client does not limit messages; the service's own limit (10 MiB by default) decides
#: and answers RESOURCE_EXHAUSTED.
_UNLIMITED = -1
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: round_robin spreads calls over every address a name resolves to (e.g. dns:///facesvc:50051
#: with one A record per replica); the default, pick_first, would send all to one.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
#: A replica that went away is tried again at most this often (gRPC's default backs off to
#: 120 s), so one that restarts takes calls again within seconds of serving.
_MAX_RECONNECT_BACKOFF_MS = 2000
#: Keepalive finds a replica that vanished without closing its connections (a node lost,
#: a network cut) within half a minute, not the minutes TCP takes, so calls stop going
#: there. Twice the server's shortest accepted ping interval
#: (FACESVC_KEEPALIVE_MIN_CLIENT_PING_SECONDS, 10 s), which a server ends with GOAWAY.
_KEEPALIVE_MS = 20_000
_KEEPALIVE_TIMEOUT_MS = 10_000
_READY = grpc.ChannelConnectivity.READY
_FAILED = grpc.ChannelConnectivity.TRANSIENT_FAILURE


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How UNAVAILABLE calls are retried: exponential back-off with +/-20% jitter, within
    the call's deadline. Every facesvc RPC is idempotent, so each may be retried; no other
    status is, because it would fail the same way again."""

    attempts: int = 5
    """Attempts in all, the first included; 1 disables retries."""
    initial_backoff: float = 0.2
    """Seconds before the first retry."""
    max_backoff: float = 3.0
    """Longest wait between two attempts, in seconds."""
    multiplier: float = 2.0
    """Growth of the wait from one retry to the next."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff or self.multiplier < 1:
            raise ValueError("need 0 <= initial_backoff <= max_backoff and multiplier >= 1")

    @classmethod
    def of(cls, retries: RetryPolicy | int) -> RetryPolicy:
        """A policy as given, or `retries` retries after the first attempt with default back-off."""
        if isinstance(retries, RetryPolicy):
            return retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a RetryPolicy or a count >= 0, not {retries!r}")
        return cls(attempts=retries + 1)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        # Jitter keeps clients that failed together from retrying together.
        return base * random.uniform(0.8, 1.2)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS for the channel. `tls=True` on a client means TLSConfig(): the system's roots."""

    root_certificates: bytes | None = None
    """PEM roots to trust instead of the system's."""
    private_key: bytes | None = None
    """PEM client key, for mutual TLS."""
    certificate_chain: bytes | None = None
    """PEM client certificate chain, for mutual TLS."""
    server_name: str | None = None
    """Name to expect in the server's certificate when it differs from the target's host."""


def targets_of(target: str | Sequence[str]) -> list[str]:
    """One or more gRPC targets ("host:port", "dns:///name:port", "ipv4:a:p,b:p", ...)."""
    targets = [target] if isinstance(target, str) else list(target)
    if not targets or not all(isinstance(t, str) and t.strip() for t in targets):
        raise ValueError(f"target must be a non-empty string or list of them, not {target!r}")
    return [t.strip() for t in targets]


def channel_options(tls: TLSConfig | None, extra: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.max_send_message_length", _UNLIMITED),
        ("grpc.max_receive_message_length", _UNLIMITED),
        ("grpc.primary_user_agent", f"facesvc-client/{__version__}"),
        ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options + list(extra)


def tls_of(tls: bool | TLSConfig | None) -> TLSConfig | None:
    if tls is None or tls is False:
        return None
    return TLSConfig() if tls is True else tls


def credentials(tls: TLSConfig) -> Any:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


def call_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return ((API_KEY_HEADER, api_key),) if api_key else ()


def error_from_rpc(error: Any, method: str) -> FaceServiceError:
    """The SDK's exception for a failed call (a grpc.RpcError or grpc.aio.AioRpcError):
    the ErrorInfo in the `grpc-status-details-bin` trailer picks the class."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    status_code = StatusCode(name) if name in StatusCode.__members__ else StatusCode.UNKNOWN
    message = (error.details() if callable(getattr(error, "details", None)) else None) or ""
    reason: str | None = None
    domain: str | None = None
    metadata: dict[str, str] = {}
    trailers = error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else None
    for key, value in trailers or ():
        if key != _STATUS_DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            break  # not a google.rpc.Status: fall back on the code
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason or None, info.domain, dict(info.metadata)
                break
    return error_for(status_code, message, reason, metadata, domain, method)


class Replicas:
    """Which target's channel a call goes to: one whose connection is READY, in turn, and
    for a retry one the call has not failed on yet. Each channel balances over the
    addresses its own name resolves to (round_robin, which skips a failed address), so a
    replica here is a target; the states come from gRPC's channel connectivity."""

    def __init__(self, count: int, state_of: Callable[[int], grpc.ChannelConnectivity]) -> None:
        self.count = count
        self._state_of = state_of
        self._turn = itertools.count()

    def pick(self, tried: frozenset[int] = frozenset()) -> int:
        """The next READY target not in `tried`; failing that one not failing to connect,
        then any untried one, then any (a single target is tried again)."""
        start = next(self._turn)
        order = [(start + i) % self.count for i in range(self.count)]
        states = {i: self._state_of(i) for i in order}
        untried = [i for i in order if i not in tried]
        for choices in (
            [i for i in untried if states[i] == _READY],
            [i for i in untried if states[i] != _FAILED],
            untried,
            [i for i in order if states[i] == _READY],
        ):
            if choices:
                return choices[0]
        return order[0]

    def ready_besides(self, tried: frozenset[int]) -> bool:
        """Whether a target the call has not failed on is READY now."""
        return any(i not in tried and self._state_of(i) == _READY for i in range(self.count))


class Connectivity:
    """The connectivity of blocking channels, kept current by gRPC's callbacks."""

    def __init__(self, channels: Sequence[grpc.Channel]) -> None:
        self._states = [grpc.ChannelConnectivity.IDLE] * len(channels)
        self._lock = threading.Lock()
        self._channels = list(channels)
        self._callbacks = []
        for index, channel in enumerate(self._channels):
            callback = self._noting(index)
            channel.subscribe(callback, try_to_connect=True)  # connect now, not at the first call
            self._callbacks.append(callback)

    def _noting(self, index: int) -> Callable[[grpc.ChannelConnectivity], None]:
        def note(state: grpc.ChannelConnectivity) -> None:
            with self._lock:
                self._states[index] = state

        return note

    def state_of(self, index: int) -> grpc.ChannelConnectivity:
        with self._lock:
            return self._states[index]

    def close(self) -> None:
        for channel, callback in zip(self._channels, self._callbacks, strict=True):
            channel.unsubscribe(callback)


def retry_delay(policy: RetryPolicy, attempt: int, ready_elsewhere: bool) -> float:
    """The wait before the next attempt: none for a call's first retry when a replica it
    has not failed on is READY; else the policy's back-off."""
    if attempt == 1 and ready_elsewhere:
        return 0.0
    return policy.backoff(attempt)


def retryable(
    failure: FaceServiceError,
    attempt: int,
    attempts: int,
    delay: float,
    deadline: float,
    closed: bool = False,
) -> bool:
    """UNAVAILABLE is retried, and CANCELLED that the far side sent (the SDK cancels a
    call only when the client closes): gRPC's server cancels a call that reaches a
    replica between its SIGTERM and the caller's receipt of its GOAWAY. Only while
    attempts and the deadline allow."""
    far_cancel = failure.code == StatusCode.CANCELLED and failure.reason is None and not closed
    return (
        (isinstance(failure, ServiceUnavailableError) or far_cancel)
        and attempt < attempts
        and time.monotonic() + delay < deadline
    )


def log_retry(method: str, failure: FaceServiceError, attempt: int, attempts: int, delay: float) -> None:
    log.info(
        "retrying %s in %.2f s after %s (attempt %d of %d)",
        method,
        delay,
        failure.reason or failure.code.value,
        attempt + 1,
        attempts,
        extra={"rpc": method, "reason": failure.reason or failure.code.value, "attempt": attempt + 1},
    )
