"""Admission of FaceService calls, and the wrapper that turns every outcome into a status.

Before the engine runs: a call whose deadline has passed is not started, a throttled
caller is refused, and beyond FACESVC_MAX_CONCURRENT_RPCS calls in progress a call is
refused at once (RESOURCE_EXHAUSTED, reason OVERLOADED) instead of queueing. While it
runs, the engine asks at each stage boundary whether the caller is still there. After
it: liveness failures and non-matching verifications are counted per caller, and a
caller reaching FACESVC_FAILURE_THRESHOLD within the window raises a security event
(and, when configured, is throttled until its failures age out).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from facesvc import errors
from facesvc.config import Settings
from facesvc.engine.engine import StopCheck
from facesvc.rpc.status import status_for

log = logging.getLogger("facesvc.rpc")
security_log = logging.getLogger("facesvc.security")

#: Callers whose failures are remembered at once; the least recently failing is forgotten first.
MAX_TRACKED_CALLERS = 10_000


def presented_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The API key in `authorization: Bearer <key>` or `x-api-key: <key>` metadata."""
    for name, value in metadata or ():
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if name == "x-api-key":
            return text.strip()
        if name == "authorization" and text[:7].lower() == "bearer ":
            return text[7:].strip()
    return None


def caller_of(context: grpc.ServicerContext) -> str:
    """Who is calling, for failure counting: the API key's fingerprint (never the key),
    else the peer's address without its port."""
    key = presented_key(context.invocation_metadata())
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    peer = context.peer() or "unknown"
    return "peer:" + peer.rsplit(":", 1)[0]


def caller_gone(context: grpc.ServicerContext) -> StopCheck:
    """The engine's stop check for this call: cancelled, disconnected or out of time."""

    def gone() -> bool:
        remaining = context.time_remaining()
        return not context.is_active() or (remaining is not None and remaining <= 0)

    return gone


class FailureTracker:
    """Failures per caller in a sliding window; thread-safe and bounded in memory."""

    def __init__(self, threshold: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._alerted: dict[str, float] = {}

    def _recent(self, caller: str, now: float) -> collections.deque[float]:
        times = self._failures.get(caller, collections.deque())
        while times and now - times[0] > self._window:
            times.popleft()
        return times

    def record(self, caller: str, rpc: str, reason: str, peer: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._recent(caller, now)
            times.append(now)
            self._failures[caller] = times
            self._failures.move_to_end(caller)
            while len(self._failures) > MAX_TRACKED_CALLERS:
                forgotten, _ = self._failures.popitem(last=False)
                self._alerted.pop(forgotten, None)
            count = len(times)
            alert = (
                count >= self._threshold and now - self._alerted.get(caller, -self._window - 1) > self._window
            )
            if alert:
                self._alerted[caller] = now
        if alert:
            security_log.warning(
                "repeated failures",
                extra={
                    "event": "repeated_failures",
                    "caller": caller,
                    "peer": peer,
                    "rpc": rpc,
                    "reason": reason,
                    "failures": count,
                    "window_seconds": self._window,
                },
            )

    def at_threshold(self, caller: str) -> bool:
        with self._lock:
            return len(self._recent(caller, self._clock())) >= self._threshold


class Guard:
    """The per-process admission state shared by every FaceService call."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.concurrent_rpcs
        self._slots = threading.BoundedSemaphore(self.limit)
        self.failures = FailureTracker(settings.failure_threshold, settings.failure_window_seconds)
        self._throttle = settings.throttle_failing_callers
        self.session_limit = settings.liveness_sessions
        self._sessions = threading.BoundedSemaphore(self.session_limit)
        self.session_failures = FailureTracker(
            settings.liveness_failure_threshold, settings.liveness_failure_window_seconds
        )

    @contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        if self._throttle and self.failures.at_threshold(caller):
            raise errors.CallerThrottledError(
                "Too many failed attempts recently; try again later.", caller=caller
            )
        if not self._slots.acquire(blocking=False):
            raise errors.OverloadedError(
                "The service is at its limit of concurrent calls; retry with backoff.",
                max_concurrent_rpcs=self.limit,
            )
        try:
            yield
        finally:
            self._slots.release()

    @contextmanager
    def admit_session(self, caller: str) -> Iterator[None]:
        """A liveness session: its own bound, and failed sessions always throttle."""
        if self.session_failures.at_threshold(caller):
            raise errors.CallerThrottledError(
                "Too many failed liveness sessions recently; try again later.", caller=caller
            )
        if not self._sessions.acquire(blocking=False):
            raise errors.OverloadedError(
                "The service is at its limit of concurrent liveness sessions; retry with backoff.",
                max_liveness_sessions=self.session_limit,
            )
        try:
            yield
        finally:
            self._sessions.release()


def _failed_match(response: Any) -> bool:
    """A Verify that did not match, or an Identify that matched nobody."""
    if hasattr(response, "match"):
        return not response.match
    if hasattr(response, "matches"):
        return not any(m.match for m in response.matches)
    return False


F = TypeVar("F", bound=Callable[..., Any])


def guarded(
    rpc: str, *, admit: bool = True, audit: Callable[[Any], dict[str, object] | None] | None = None
) -> Callable[[F], F]:
    """Wrap a servicer method (whose instance has a `guard`): admission first, then every
    outcome to its status. Domain errors become their status and reason, suspicious ones
    are logged with the peer, anything unexpected is logged with its traceback and
    returned as a bare INTERNAL. `admit=False` (Health) skips the concurrency bound.
    `audit(response)`, when given, names what a successful answer holds that the security
    log should record (IdentifyFaces' refused faces), or None."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                _abort_plain(
                    context, grpc.StatusCode.DEADLINE_EXCEEDED, "The deadline passed before the call started."
                )
            guard: Guard = self.guard
            caller = caller_of(context)
            try:
                if admit:
                    with guard.admit(caller):
                        response = method(self, request, context)
                else:
                    response = method(self, request, context)
            except errors.FaceServiceError as error:
                if error.suspicious:
                    security_log.warning(
                        "suspicious activity",
                        extra={
                            "event": "suspicious_activity",
                            "rpc": rpc,
                            "peer": context.peer(),
                            "caller": caller,
                            "reason": error.reason,
                            "details": dict(error.metadata),
                        },
                    )
                if error.failed_attempt:
                    guard.failures.record(caller, rpc, error.reason, context.peer())
                _abort(context, status_for(error))
            except errors.EngineNotReadyError as error:
                _abort(context, status_for(error))
            except errors.RequestAbandonedError:
                _abort_plain(
                    context, grpc.StatusCode.CANCELLED, "The caller went away; the work was stopped."
                )
            except Exception as error:
                log.exception("unexpected error", extra={"rpc": rpc, "peer": context.peer()})
                _abort(context, status_for(error))
            if _failed_match(response):
                guard.failures.record(caller, rpc, "NO_MATCH", context.peer())
            if audit is not None and (details := audit(response)) is not None:
                security_log.warning(
                    "suspicious activity",
                    extra={
                        "event": "suspicious_activity",
                        "rpc": rpc,
                        "peer": context.peer(),
                        "caller": caller,
                        "reason": "FACES_REFUSED",
                        "details": details,
                    },
                )
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


def _abort(context: grpc.ServicerContext, status: grpc.Status) -> NoReturn:
    context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def _abort_plain(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("abort returned")  # pragma: no cover


class SessionEnd(Protocol):
    """Told how each liveness stream ended (facesvc.rpc.metrics)."""

    def session_ended(self, outcome: str, reason: str, frames: int) -> None: ...


def guarded_stream(rpc: str) -> Callable[[F], F]:
    """`guarded` for the liveness stream (a generator of responses, on an instance with
    `guard` and `session_metrics`): admission by the session bound, every error to its
    status, and one security line per failed session with its reason (a FAILED result,
    or a refusal). `failure_of(response)` names the failure a final response carries."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, requests: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            guard: Guard = self.guard
            metrics: SessionEnd | None = self.session_metrics
            caller = caller_of(context)

            def failed(reason: str, details: object) -> None:
                guard.session_failures.record(caller, rpc, reason, context.peer())
                security_log.warning(
                    "liveness session failed",
                    extra={
                        "event": "liveness_failed",
                        "rpc": rpc,
                        "peer": context.peer(),
                        "caller": caller,
                        "reason": reason,
                        "details": details,
                    },
                )

            try:
                with guard.admit_session(caller):
                    for response in method(self, requests, context):
                        reason, details = self.failure_of(response)
                        if reason:
                            failed(reason, details)
                        yield response
            except errors.FaceServiceError as error:
                if not isinstance(error, errors.OverloadedError | errors.CallerThrottledError):
                    failed(error.reason, dict(error.metadata))
                if metrics is not None:
                    metrics.session_ended("REFUSED", error.reason, 0)
                _abort(context, status_for(error))
            except errors.EngineNotReadyError as error:
                _abort(context, status_for(error))
            except errors.RequestAbandonedError:
                if metrics is not None:
                    metrics.session_ended("ABANDONED", "", 0)
                _abort_plain(
                    context, grpc.StatusCode.CANCELLED, "The caller went away; the work was stopped."
                )
            except Exception as error:
                log.exception("unexpected error", extra={"rpc": rpc, "peer": context.peer()})
                _abort(context, status_for(error))

        return wrapper  # type: ignore[return-value]

    return decorate
