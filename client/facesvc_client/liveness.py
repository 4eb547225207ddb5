"""Liveness sessions: the values `check_liveness` returns and hands to its callback, the
frames it takes, the stream it drives, and the signed result's check.

A session is lock-step: the SDK sends one frame, waits for its answer (a feedback, or the
result when that frame ended the session), then takes the next frame from your iterator. A camera loop that yields its latest frame when asked
thus never builds a backlog, and the person sees each prompt before the next frame.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from facesvc_client import _convert
from facesvc_client._convert import GalleryInput, ImageInput, StoredInput
from facesvc_client._proto import face_service_pb2 as pb
from facesvc_client.errors import FaceServiceError, LivenessSessionLostError, StatusCode
from facesvc_client.types import (
    Embedding,
    EnrolledTemplate,
    Face,
    FaceSelection,
    IdentifyResult,
    LivenessCheck,
    PackedGallery,
    Quality,
    SealedGallery,
    SealedTemplate,
    Template,
    VerifyResult,
    _fields,  # the same JSON shape as the other results
    candidates_from,
)


class LivenessChallenge(enum.StrEnum):
    """What a prompt asks the person to do. Turns are the person's own left and right;
    send frames as the camera captures them, not mirrored."""

    BLINK = "BLINK"
    TURN_LEFT = "TURN_LEFT"
    TURN_RIGHT = "TURN_RIGHT"


class LivenessAdvice(enum.StrEnum):
    """What to tell the person about the last frame."""

    OK = "OK"
    NO_FACE = "NO_FACE"
    MOVE_CLOSER = "MOVE_CLOSER"
    CENTRE_FACE = "CENTRE_FACE"
    IMPROVE_CAPTURE = "IMPROVE_CAPTURE"
    ONE_PERSON_ONLY = "ONE_PERSON_ONLY"


@dataclass(frozen=True, slots=True)
class LivenessFrame:
    """One camera frame and when it was captured (seconds, any origin, growing)."""

    image: ImageInput
    capture_time: float


@dataclass(frozen=True, slots=True)
class LivenessPrompt:
    """One prompt: show `challenge` to the person."""

    challenge: LivenessChallenge
    index: int
    """From 1."""
    count: int
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class LivenessStarted:
    """The session opened; `prompt` is the first."""

    session_id: str
    prompt: LivenessPrompt
    max_frames: int
    max_frame_bytes: int
    max_session_seconds: float
    min_frame_rate: float
    max_frame_rate: float


@dataclass(frozen=True, slots=True)
class LivenessFeedback:
    """The answer to one frame. Show `prompt` when it changed, and `advice`."""

    advice: LivenessAdvice
    face: Face | None
    prompt: LivenessPrompt
    progress: float
    """0 to 1 of the current prompt."""
    prompts_met: int
    frame_index: int


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """How the session ended. `failure` is None when it passed; on PASSED the best
    frame's embedding, quality and face, and a Verify or Identify result when templates
    were given. `token` is the signed result (empty when the server has no key): send it
    to your backend, which checks it with verify_liveness_token."""

    passed: bool
    failure: str | None
    """PROMPT_TIMEOUT, WRONG_RESPONSE, FACE_LOST, MULTIPLE_FACES, IDENTITY_CHANGED,
    NO_MOTION, PRESENTATION_ATTACK, FRAME_TIMING, TOO_MANY_FRAMES or SESSION_EXPIRED."""
    detail: str
    score: float
    """0-100: >= 50 when passed."""
    session_id: str
    frames: int
    prompts_met: int
    embedding: Template | None = None
    quality: Quality | None = None
    face: Face | None = None
    liveness_checks: tuple[LivenessCheck, ...] = ()
    verify: VerifyResult | None = None
    identify: IdentifyResult | None = None
    token: str = ""
    prompts: tuple[LivenessPrompt, ...] = field(default=())
    """Every prompt the session showed, in order."""
    templates: tuple[EnrolledTemplate, ...] = ()
    """On PASSED, when `max_templates` was asked: the templates chosen from the frames of
    the one person checked (the first is `embedding`), to store as Enroll's are."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


LivenessEvent = LivenessStarted | LivenessFeedback
#: A frame for check_liveness: a LivenessFrame, (image, capture_time), or an image alone
#: (its capture time is then the moment the SDK takes it from the iterator).
FrameInput = LivenessFrame | tuple[ImageInput, float] | ImageInput


# ---- the signed result ----------------------------------------------------------------


class LivenessTokenError(Exception):
    """The token is malformed, its signature does not verify, or its claims do not hold."""


@dataclass(frozen=True, slots=True)
class LivenessClaims:
    """What a verified token says."""

    session_id: str
    issued_at: int
    """Unix time, seconds."""
    passed: bool
    score: float
    embedding_sha256: str
    """SHA-256 (hex) of the best frame's embedding as little-endian float32; '' if none."""
    reason: str = ""
    match: bool | None = None
    """The Verify result's match, when templates of one person were given."""
    identity: str | None = None
    """The Identify result's matched id ('' when nobody matched), for a gallery."""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def embedding_sha256(embedding: Embedding) -> str:
    """The digest a token carries for `embedding`."""
    return hashlib.sha256(b"".join(struct.pack("<f", v) for v in embedding.values)).hexdigest()


def verify_liveness_token(
    token: str,
    key: str | bytes,
    *,
    max_age_seconds: float | None = 300.0,
    embedding: Embedding | None = None,
    now: float | None = None,
) -> LivenessClaims:
    """Check a liveness result's token with the server's FACESVC_LIVENESS_TOKEN_KEY, in
    your backend (never on the kiosk, which must not hold the key). Raises
    LivenessTokenError unless the HMAC-SHA256 signature verifies, the token is at most
    `max_age_seconds` old (None: any age) and, when `embedding` is given, the token was
    issued for that embedding. A token says what the session ended with: check
    `claims.passed` yourself, and keep the session ids you accepted to refuse a replay."""
    secret = key.encode() if isinstance(key, str) else key
    payload, dot, signature = token.partition(".")
    if not dot or not payload or not signature:
        raise LivenessTokenError("not a liveness token")
    expected = hmac.new(secret, payload.encode("ascii", "replace"), hashlib.sha256).digest()
    # Compared as text: a changed character that decodes to the same bytes (base64's
    # spare bits) is a changed token all the same.
    canonical = base64.urlsafe_b64encode(expected).rstrip(b"=").decode("ascii")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), canonical.encode("ascii")):
        raise LivenessTokenError("the signature does not verify")
    try:
        data: dict[str, Any] = json.loads(_unb64(payload))
        claims = LivenessClaims(
            session_id=str(data["sid"]),
            issued_at=int(data["iat"]),
            passed=data["outcome"] == "PASSED",
            score=float(data["score"]),
            embedding_sha256=str(data.get("emb", "")),
            reason=str(data.get("reason", "")),
            match=bool(data["match"]) if "match" in data else None,
            identity=str(data["identity"]) if "identity" in data else None,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise LivenessTokenError("malformed payload") from error
    current = time.time() if now is None else now
    if max_age_seconds is not None and not (-60 <= current - claims.issued_at <= max_age_seconds):
        raise LivenessTokenError(f"the token is {current - claims.issued_at:.0f} s old")
    if embedding is not None and not hmac.compare_digest(
        embedding_sha256(embedding), claims.embedding_sha256
    ):
        raise LivenessTokenError("the token was issued for another embedding")
    return claims


# ---- messages ------------------------------------------------------------------------


def start_request(
    stored: StoredInput | None,
    candidates: GalleryInput | None,
    top_k: int,
    threshold: float | None,
    face_selection: FaceSelection | str | None,
    frame_rate: float,
    max_templates: int = 0,
) -> pb.CheckLivenessRequest:
    start = pb.LivenessStart(top_k=top_k, frame_rate=frame_rate, max_templates=max_templates)
    if face_selection is not None:
        start.face_selection = _convert._selection(face_selection)
    if stored is not None:
        templates = [stored] if isinstance(stored, Embedding | SealedTemplate) else list(stored)
        start.stored_embeddings.extend(_convert.embedding_to_proto(e) for e in templates)
    if candidates is not None:
        if isinstance(candidates, SealedGallery):  # LivenessStart has no field for one
            raise TypeError("a liveness session takes candidates or a PackedGallery, not a SealedGallery")
        gallery = _convert.identify_request(b"", candidates, top_k, None, None)
        if isinstance(candidates, PackedGallery) or gallery.HasField("packed_candidates"):
            start.packed_candidates.CopyFrom(gallery.packed_candidates)
        else:  # Candidate messages, sealed templates included: LivenessStart has no sealed gallery
            start.candidates.extend(
                pb.Candidate(id=c.id, embedding=_convert.embedding_to_proto(c.embedding))
                for c in candidates_from(candidates)
            )
    if threshold is not None:
        start.threshold = threshold
    return pb.CheckLivenessRequest(start=start)


def frame_request(frame: FrameInput) -> pb.CheckLivenessRequest:
    if isinstance(frame, LivenessFrame):
        image, capture_time = frame.image, frame.capture_time
    elif isinstance(frame, tuple):
        image, capture_time = frame
    else:
        image, capture_time = frame, time.monotonic()
    return pb.CheckLivenessRequest(
        frame=pb.LivenessFrame(image=_convert.read_image(image), capture_time=float(capture_time))
    )


def _prompt(message: pb.LivenessPrompt) -> LivenessPrompt:
    return LivenessPrompt(
        challenge=LivenessChallenge(
            pb.LivenessChallenge.Name(message.challenge).removeprefix("LIVENESS_CHALLENGE_")
        ),
        index=message.index,
        count=message.count,
        timeout_seconds=message.timeout_seconds,
    )


def event_of(message: pb.CheckLivenessResponse) -> LivenessEvent | pb.LivenessResult:
    """A started or feedback event, or the raw result (finished by result_of)."""
    if message.HasField("started"):
        started = message.started
        return LivenessStarted(
            session_id=started.session_id,
            prompt=_prompt(started.prompt),
            max_frames=started.max_frames,
            max_frame_bytes=started.max_frame_bytes,
            max_session_seconds=started.max_session_seconds,
            min_frame_rate=started.min_frame_rate,
            max_frame_rate=started.max_frame_rate,
        )
    if message.HasField("feedback"):
        feedback = message.feedback
        return LivenessFeedback(
            advice=LivenessAdvice(pb.LivenessAdvice.Name(feedback.advice).removeprefix("LIVENESS_ADVICE_")),
            face=_convert._face(feedback.face) if feedback.HasField("face") else None,
            prompt=_prompt(feedback.prompt),
            progress=feedback.progress,
            prompts_met=feedback.prompts_met,
            frame_index=feedback.frame_index,
        )
    return message.result


def result_of(message: pb.LivenessResult, prompts: Iterable[LivenessPrompt]) -> LivenessResult:
    passed = message.outcome == pb.LIVENESS_OUTCOME_PASSED
    return LivenessResult(
        passed=passed,
        failure=None
        if passed
        else pb.LivenessFailure.Name(message.failure).removeprefix("LIVENESS_FAILURE_"),
        detail=message.detail,
        score=message.score,
        session_id=message.session_id,
        frames=message.frames,
        prompts_met=message.prompts_met,
        embedding=_convert._embedding(message.embedding) if message.HasField("embedding") else None,
        quality=_convert._quality(message.quality) if message.HasField("quality") else None,
        face=_convert._face(message.face) if message.HasField("face") else None,
        liveness_checks=_convert._liveness(message.liveness_checks),
        verify=_convert.verify_result(message.verify) if message.HasField("verify") else None,
        identify=_convert.identify_result(message.identify) if message.HasField("identify") else None,
        token=message.token,
        prompts=tuple(prompts),
        templates=_convert.enrolled_templates(message.templates),
    )


class _Prompts:
    """The prompts seen so far, in order."""

    def __init__(self) -> None:
        self.seen: list[LivenessPrompt] = []

    def note(self, event: LivenessEvent) -> None:
        if not self.seen or self.seen[-1].index != event.prompt.index:
            self.seen.append(event.prompt)


class Progress:
    """Whether a session started (its LivenessStarted came): until then no frame was
    taken from the caller's iterator, so a refused start may go to another replica."""

    def __init__(self) -> None:
        self.started = False


def lost_or(failure: FaceServiceError) -> FaceServiceError:
    """A started session's failure: LivenessSessionLostError when its replica went away
    (the connection broke, or the replica stopped and its grace ran out), else `failure`."""
    if failure.reason is None and failure.code in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED):
        return LivenessSessionLostError(
            f"the liveness session's replica went away ({failure.message}); start a new session",
            code=failure.code,
            metadata=failure.metadata,
            method="CheckLiveness",
        )
    return failure


# ---- the blocking driver ------------------------------------------------------------------

_END: Any = object()


def run_session(
    call: Callable[[Iterator[pb.CheckLivenessRequest]], Iterator[pb.CheckLivenessResponse]],
    start: pb.CheckLivenessRequest,
    frames: Iterable[FrameInput],
    on_event: Callable[[LivenessEvent], None] | None,
    progress: Progress | None = None,
) -> LivenessResult:
    """Drive one stream lock-step: a frame goes out only after the last one's feedback."""
    turn: queue.Queue[Any] = queue.Queue()
    finished = threading.Event()

    def requests() -> Iterator[pb.CheckLivenessRequest]:
        yield start
        if turn.get() is _END:  # the LivenessStarted (or the end)
            return
        for frame in frames:
            if finished.is_set():
                return
            yield frame_request(frame)
            if turn.get() is _END:
                return

    prompts = _Prompts()
    try:
        for message in call(requests()):
            if progress is not None:
                progress.started = True
            event = event_of(message)
            if isinstance(event, LivenessStarted | LivenessFeedback):
                prompts.note(event)
                if on_event is not None:
                    on_event(event)
                turn.put(True)
                continue
            return result_of(event, prompts.seen)
    finally:
        finished.set()
        turn.put(_END)
    raise RuntimeError("the stream ended without a LivenessResult")


# ---- a video file as the camera (the CLI; needs the `video` extra: OpenCV) -----------------


def video_frames(path: str, *, pace: bool = True) -> tuple[float, Iterator[LivenessFrame]]:
    """The frame rate of a video file and its frames as JPEG LivenessFrames, captured at
    the video's own times. With `pace`, a frame is handed over no earlier than its time
    (like a camera); without, as fast as the session takes them."""
    try:
        import cv2  # the `video` extra: pip install 'facesvc-client[video]'
    except ImportError as error:
        raise RuntimeError("playing a video needs OpenCV: pip install 'facesvc-client[video]'") from error
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise RuntimeError(f"cannot open video {path}")
    rate = float(capture.get(cv2.CAP_PROP_FPS)) or 15.0

    def frames() -> Iterator[LivenessFrame]:
        started = time.monotonic()
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                at = index / rate
                index += 1
                if pace and (wait := started + at - time.monotonic()) > 0:
                    time.sleep(wait)
                ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    yield LivenessFrame(data.tobytes(), at)
        finally:
            capture.release()

    return rate, frames()
