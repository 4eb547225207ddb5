"""AsyncFaceClient: FaceClient's twin on grpc.aio, with the same deadlines, retries and errors."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

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


class AsyncFaceClient:
    """A connection to facesvc for asyncio code; see FaceClient for the arguments.
    Create it inside the event loop that uses it, and `await client.close()` (or use
    `async with`) when done. Photos given as paths are read in a worker thread."""

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
            grpc.aio.secure_channel(t, _transport.credentials(tls_config), channel_options)
            if tls_config
            else grpc.aio.insecure_channel(t, channel_options)
            for t in _transport.targets_of(target)
        ]
        self._stubs = [pb_grpc.FaceServiceStub(channel) for channel in self._channels]  # type: ignore[no-untyped-call]
        for channel in self._channels:
            channel.get_state(try_to_connect=True)  # connect now, not at the first call
        self._replicas = _transport.Replicas(
            len(self._channels), lambda index: self._channels[index].get_state(try_to_connect=False)
        )

    async def enroll(
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
        """See FaceClient.enroll."""
        request = _convert.enroll_request(
            await _read(image),
            face_selection,
            presentation_attack,
            min_quality,
            [await _read(more) for more in more_images],
            max_templates,
        )
        return _convert.enroll_result(await self._call("Enroll", request, timeout))

    async def verify(
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
        """See FaceClient.verify."""
        request = _convert.verify_request(
            await _read(image), stored, threshold, face_selection, presentation_attack, far, min_quality
        )
        return _convert.verify_result(await self._call("Verify", request, timeout))

    async def identify(
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
        """See FaceClient.identify."""
        request = _convert.identify_request(
            await _read(image),
            candidates,
            top_k,
            threshold,
            face_selection,
            presentation_attack,
            far,
            fpir,
            [await _read(more) for more in more_images],
            min_quality,
        )
        return _convert.identify_result(await self._call("Identify", request, timeout))

    async def identify_faces(
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
        """See FaceClient.identify_faces."""
        request = _convert.identify_faces_request(
            await _read(image), candidates, top_k, presentation_attack, fpir, max_faces
        )
        return _convert.identify_faces_result(await self._call("IdentifyFaces", request, timeout))

    async def reseal(
        self, templates: Sequence[Template], *, timeout: float | None = None
    ) -> list[SealedTemplate]:
        """See FaceClient.reseal."""
        request = _convert.reseal_request(templates)
        return _convert.reseal_result(await self._call("Reseal", request, timeout))

    async def seal_gallery(self, candidates: GalleryInput, *, timeout: float | None = None) -> SealedGallery:
        """See FaceClient.seal_gallery."""
        response = await self._call("Reseal", _convert.seal_gallery_request(candidates), timeout)
        return SealedGallery(response.packed_gallery)

    async def health(self, *, timeout: float | None = None) -> Health:
        """See FaceClient.health."""
        return _convert.health_result(await self._call("Health", pb.HealthRequest(), timeout))

    async def check_liveness(
        self,
        frames: Iterable[FrameInput] | AsyncIterable[FrameInput],
        *,
        stored: StoredInput | None = None,
        candidates: GalleryInput | None = None,
        top_k: int = 1,
        threshold: float | None = None,
        face_selection: FaceSelection | None = None,
        frame_rate: float = 15.0,
        on_event: Callable[[LivenessEvent], Any] | None = None,
        timeout: float = 60.0,
        max_templates: int = 0,
    ) -> LivenessResult:
        """See FaceClient.check_liveness; `frames` may be an async iterator too, and
        `on_event` a coroutine function."""
        start = liveness.start_request(
            stored, candidates, top_k, threshold, face_selection, frame_rate, max_templates
        )
        deadline = time.monotonic() + timeout
        attempts = self.retry_policy.attempts
        tried: set[int] = set()
        for attempt in range(1, attempts + 1):
            index = self._replicas.pick(frozenset(tried))
            progress = liveness.Progress()
            try:
                remaining = max(deadline - time.monotonic(), 0.001)
                return await self._session(index, start, frames, on_event, progress, remaining)
            except grpc.RpcError as rpc_error:  # grpc.aio.AioRpcError
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
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _session(
        self,
        index: int,
        start: Any,
        frames: Iterable[FrameInput] | AsyncIterable[FrameInput],
        on_event: Callable[[LivenessEvent], Any] | None,
        progress: liveness.Progress,
        timeout: float,
    ) -> LivenessResult:
        """One stream, lock-step; grpc errors escape to check_liveness."""
        call = self._stubs[index].CheckLiveness(timeout=timeout, metadata=self._metadata)
        prompts = liveness._Prompts()

        async def answer() -> LivenessResult | None:
            """Read up to the next event (handed to on_event), or the result."""
            message = await call.read()
            if message is grpc.aio.EOF:
                raise RuntimeError("the stream ended without a LivenessResult")
            progress.started = True
            event = liveness.event_of(message)
            if isinstance(event, liveness.LivenessStarted | liveness.LivenessFeedback):
                prompts.note(event)
                if on_event is not None:
                    shown = on_event(event)
                    if inspect.isawaitable(shown):
                        await shown
                return None
            return liveness.result_of(event, prompts.seen)

        await call.write(start)
        result = await answer()
        if result is not None:
            return result
        ended = False
        async for frame in _frames(frames):
            request = await asyncio.to_thread(liveness.frame_request, frame)
            try:
                await call.write(request)
            except (grpc.RpcError, asyncio.InvalidStateError):
                # The last frame's feedback came with the result: the stream is closed,
                # and the result is waiting to be read.
                ended = True
                break
            result = await answer()
            if result is not None:
                return result
        if not ended:
            await call.done_writing()
        while (result := await answer()) is None:
            pass
        return result

    async def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        self._closed = True
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, method: str, request: Any, timeout: float | None) -> Any:
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
                return await getattr(self._stubs[index], method)(
                    request, timeout=remaining, metadata=self._metadata
                )
            except grpc.RpcError as rpc_error:  # grpc.aio.AioRpcError
                failure = _transport.error_from_rpc(rpc_error, method)
            tried.add(index)
            delay = _transport.retry_delay(
                self.retry_policy, attempt, self._replicas.ready_besides(frozenset(tried))
            )
            if not _transport.retryable(failure, attempt, attempts, delay, deadline, self._closed):
                raise failure
            _transport.log_retry(method, failure, attempt, attempts, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


async def _read(image: ImageInput) -> bytes:
    if isinstance(image, bytes | bytearray | memoryview):
        return _convert.read_image(image)
    return await asyncio.to_thread(_convert.read_image, image)


async def _frames(frames: Iterable[FrameInput] | AsyncIterable[FrameInput]) -> AsyncIterator[FrameInput]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame
