"""Liveness session: random prompts (blink, turn the head) a photo or a replay cannot follow.

One LivenessSession per CheckLiveness stream. `start()` draws the prompts and returns
the first; `frame()` runs each frame through the engine (detect, quality, the passive
presentation-attack stage, embed), measures eye openness and yaw (facesvc.engine.session.face_state),
advances the current prompt and checks the session's rules; the session ends PASSED
when every prompt was met by one person, FAILED with a `Failure` otherwise. Capture times
are the kiosk's; the lifetime is the server's clock. No frame is kept beyond the best
one's analysed face (its embedding, not its pixels), nothing is written anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

from facesvc.config import Settings
from facesvc.engine.engine import FaceEngine, StopCheck
from facesvc.engine.matching import open_set
from facesvc.engine.matching.gallery import Gallery
from facesvc.engine.pipeline import decode
from facesvc.engine.pipeline.presentation_attack import CHECK_NAME as ATTACK_CHECK_NAME
from facesvc.engine.pipeline.presentation_attack import AttackMode
from facesvc.engine.session import face_state
from facesvc.engine.session import token as liveness_token
from facesvc.engine.session.blinks import BlinkDetector
from facesvc.engine.session.evidence import LiveEvidence
from facesvc.engine.session.face_state import FaceState, FaceStateEstimator
from facesvc.engine.session.motion import StillWatch
from facesvc.engine.templates import enrolment
from facesvc.engine.types import (
    AnalysedFace,
    EnrolledTemplate,
    FaceSelection,
    FloatArray,
    Identification,
    StoredEmbedding,
    Verification,
)
from facesvc.errors import (
    FaceNotScorableError,
    FaceServiceError,
    FaceTooSmallError,
    LivenessFailedError,
    LivenessSessionError,
    LowQualityError,
    MultipleFacesError,
    NoFaceError,
    PresentationAttackError,
)

_log = logging.getLogger("facesvc.liveness")
#: Frames of an identical face patch in a row (facesvc.engine.session.motion) that end a session.
STILL_FRAMES = 5
#: Byte-identical frames in a row that end a session: a real camera never sends one twice.
REPEATED_FRAMES = 2
#: Consecutive frames with a second comparable face that end a session.
MULTIPLE_FACE_FRAMES = 2
#: Frontal frames farther than the identity distance from the first that end a session.
IDENTITY_MISMATCHES = 2
#: Frames whose yaw is averaged for the session's frontal pose.
FRONTAL_FRAMES = 3
#: Frames over which the frame rate is measured.
RATE_WINDOW = 10
#: A face whose centre lies outside this central share of the frame is told to centre.
CENTRE_SHARE = 0.6


class Challenge(Enum):
    """One action a prompt asks for."""

    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"


class Failure(Enum):
    """Why a session failed (the proto's LivenessFailure)."""

    PROMPT_TIMEOUT = "PROMPT_TIMEOUT"
    WRONG_RESPONSE = "WRONG_RESPONSE"
    FACE_LOST = "FACE_LOST"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    IDENTITY_CHANGED = "IDENTITY_CHANGED"
    NO_MOTION = "NO_MOTION"
    PRESENTATION_ATTACK = "PRESENTATION_ATTACK"
    FRAME_TIMING = "FRAME_TIMING"
    TOO_MANY_FRAMES = "TOO_MANY_FRAMES"
    SESSION_EXPIRED = "SESSION_EXPIRED"


class Advice(Enum):
    """What a kiosk should tell the person about one frame."""

    OK = "OK"
    NO_FACE = "NO_FACE"
    MOVE_CLOSER = "MOVE_CLOSER"
    CENTRE_FACE = "CENTRE_FACE"
    IMPROVE_CAPTURE = "IMPROVE_CAPTURE"
    ONE_PERSON_ONLY = "ONE_PERSON_ONLY"


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    """The session rules, from Settings."""

    challenges: tuple[Challenge, ...]
    prompts: int
    prompt_seconds: float
    max_frames: int
    max_frame_bytes: int
    max_session_seconds: float
    min_frame_rate: float
    max_frame_rate: float
    face_lost_seconds: float
    identity_distance: float | None
    max_attack_share: float
    token_key: bytes | None
    detection_size: int
    embed_share: float
    #: The presentation-attack stage: OFF skips it, REPORT scores frames without failing
    #: a session, ENFORCE fails it past max_attack_share.
    attack_mode: AttackMode
    min_live_frames: int = 20
    min_live_seconds: float = 1.5

    @staticmethod
    def of(settings: Settings) -> LivenessPolicy:
        key = settings.liveness_token_key
        return LivenessPolicy(
            challenges=tuple(Challenge(name) for name in dict.fromkeys(settings.liveness_challenges)),
            prompts=settings.liveness_prompts,
            prompt_seconds=settings.liveness_prompt_seconds,
            max_frames=settings.liveness_max_frames,
            max_frame_bytes=settings.liveness_max_frame_bytes,
            max_session_seconds=settings.liveness_max_session_seconds,
            min_frame_rate=settings.liveness_min_frame_rate,
            max_frame_rate=settings.liveness_max_frame_rate,
            face_lost_seconds=settings.liveness_face_lost_seconds,
            identity_distance=settings.liveness_identity_distance,
            max_attack_share=settings.liveness_max_attack_share,
            token_key=key.get_secret_value().encode() if key is not None else None,
            detection_size=settings.liveness_detection_size,
            embed_share=settings.liveness_embed_share,
            attack_mode=AttackMode(settings.presentation_attack),
            min_live_frames=settings.liveness_min_live_frames,
            min_live_seconds=settings.liveness_min_live_seconds,
        )


@dataclass(frozen=True, slots=True)
class SessionTemplates:
    """What the session's best frame is compared with: one person's embeddings (Verify),
    a gallery (Identify), or nothing (liveness alone)."""

    stored: Sequence[StoredEmbedding] = ()
    gallery: Gallery | None = None
    top_k: int = 1
    threshold: float | None = None
    max_templates: int = 0  # an enrolment: the result carries templates (templates.enrolment)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt of the session."""

    challenge: Challenge
    index: int  # from 1
    count: int
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class Started:
    """The answer to the session's opening."""

    session_id: str
    prompt: Prompt
    policy: LivenessPolicy


@dataclass(frozen=True, slots=True)
class Feedback:
    """The answer to one frame."""

    advice: Advice
    face: AnalysedFace | None
    prompt: Prompt
    progress: float
    prompts_met: int
    frame_index: int


@dataclass(frozen=True, slots=True)
class SessionResult:
    """How the session ended."""

    session_id: str
    passed: bool
    failure: Failure | None
    detail: str
    score: float
    frames: int
    prompts_met: int
    best: AnalysedFace | None = None
    #: The model of best's embedding.
    model: str = ""
    verification: Verification | None = None
    identification: Identification | None = None
    token: str = ""
    templates: tuple[EnrolledTemplate, ...] = ()


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """`frame()`'s answer: the feedback, and the result when the session ended with it."""

    feedback: Feedback
    result: SessionResult | None = None


class SessionObserver(Protocol):
    """Told each frame's processing time and each session's end (facesvc.rpc.metrics)."""

    def frame_processed(self, seconds: float) -> None: ...

    def session_ended(self, outcome: str, reason: str, frames: int) -> None: ...


def draw_prompts(challenges: Sequence[Challenge], count: int, rng: secrets.SystemRandom) -> list[Challenge]:
    """`count` challenges at random, never the same twice in a row."""
    drawn: list[Challenge] = []
    for _ in range(count):
        allowed = [c for c in challenges if not drawn or c is not drawn[-1]] or list(challenges)
        drawn.append(rng.choice(allowed))
    return drawn


class _Ended(Exception):
    """Internal: a rule ended the session."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


@dataclass
class _Progress:
    """The current prompt's state."""

    started_at: float | None = None  # capture time of its first frame
    value: float = 0.0


@dataclass
class _Track:
    """What the session remembers between frames (no pixels, no image bytes)."""

    first_capture: float | None = None
    last_capture: float | None = None
    capture_times: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))
    last_usable: float | None = None
    last_digest: bytes = b""
    repeats: int = 0
    multiple: int = 0
    yaws: list[float] = field(default_factory=list)
    anchor: FloatArray | None = None
    mismatches: int = 0
    worst_distance: float = 0.0
    scored: int = 0
    attacks: int = 0
    live_scores: list[float] = field(default_factory=list)
    attack_threshold: float = 0.5
    best: AnalysedFace | None = None
    #: Embedded frontal frames consistent with the first (the one verified person): the
    #: burst Identify's open-set rule decides on together with the best frame.
    consistent: list[AnalysedFace] = field(default_factory=list)


class LivenessSession:
    """One session's state machine. Not thread-safe: one stream drives it."""

    def __init__(
        self,
        engine: FaceEngine,
        estimator: FaceStateEstimator,
        policy: LivenessPolicy,
        templates: SessionTemplates,
        selection: FaceSelection | None,
        frame_rate: float,
        *,
        observer: SessionObserver | None = None,
        rng: secrets.SystemRandom | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (policy.min_frame_rate <= frame_rate <= policy.max_frame_rate):
            raise LivenessSessionError(
                f"frame_rate {frame_rate:g} is outside {policy.min_frame_rate:g}-"
                f"{policy.max_frame_rate:g} frames per second.",
                frame_rate=frame_rate,
                min_frame_rate=policy.min_frame_rate,
                max_frame_rate=policy.max_frame_rate,
            )
        engine.check_templates(templates.stored, templates.gallery)
        self._engine = engine
        self._estimator = estimator
        self.policy = policy
        self._templates = templates
        self._selection = selection
        self._rng = rng or secrets.SystemRandom()
        self._observer = observer
        self._clock = clock
        self._opened = clock()
        self.session_id = secrets.token_hex(16)
        drawn = draw_prompts(policy.challenges, policy.prompts, self._rng)
        self._prompts = [
            Prompt(challenge, index + 1, len(drawn), policy.prompt_seconds)
            for index, challenge in enumerate(drawn)
        ]
        self._current = 0
        self._progress = _Progress()
        self._track = _Track()
        self._blinks, self._still = BlinkDetector(), StillWatch()
        self._evidence = LiveEvidence(policy.min_live_frames, policy.min_live_seconds)
        self.frames = 0
        self.result: SessionResult | None = None

    # ---- the session's life ------------------------------------------------------------

    def start(self) -> Started:
        return Started(self.session_id, self._prompts[0], self.policy)

    def seconds_left(self) -> float:
        """Server seconds until the session's lifetime ends."""
        return self.policy.max_session_seconds - (self._clock() - self._opened)

    def expire(self) -> SessionResult:
        """The lifetime passed while waiting for a frame."""
        return self._end(
            Failure.SESSION_EXPIRED, f"the session lasted over {self.policy.max_session_seconds:g} s"
        )

    def stream_ended(self) -> SessionResult:
        """The kiosk closed its stream before every prompt was met."""
        return self._end(Failure.PROMPT_TIMEOUT, "the stream ended before every prompt was met")

    def frame(self, image: bytes, capture_time: float, should_stop: StopCheck | None = None) -> FrameOutcome:
        """One camera frame. Raises a FaceServiceError for a frame that is no image (the
        session then ends without a result); any rule broken ends it FAILED."""
        if self.result is not None:
            raise LivenessSessionError("the session has ended; open a new one.")
        started = time.perf_counter()
        self.frames += 1
        try:
            feedback = self._frame(image, capture_time, should_stop)
            done = self._current >= len(self._prompts) and self._evidence.enough()
            result = self._finish() if done else None
        except _Ended as ended:
            feedback = self._feedback(Advice.OK, None)
            result = self._end(ended.failure, ended.detail)
        if self._observer is not None:
            self._observer.frame_processed(time.perf_counter() - started)
        return FrameOutcome(feedback, result)

    # ---- one frame ------------------------------------------------------------------

    def _frame(self, image: bytes, capture_time: float, should_stop: StopCheck | None) -> Feedback:
        policy, track = self.policy, self._track
        if self.seconds_left() <= 0:
            raise _Ended(Failure.SESSION_EXPIRED, f"the session lasted over {policy.max_session_seconds:g} s")
        if self.frames > policy.max_frames:
            raise _Ended(Failure.TOO_MANY_FRAMES, f"more than {policy.max_frames} frames")
        if len(image) > policy.max_frame_bytes:
            raise LivenessSessionError(
                f"The frame has {len(image)} bytes; at most {policy.max_frame_bytes} are accepted.",
                bytes=len(image),
                max_frame_bytes=policy.max_frame_bytes,
            )
        self._check_timing(capture_time)
        if self._progress.started_at is None:
            self._progress.started_at = capture_time
        digest = hashlib.sha256(image).digest()
        track.repeats = track.repeats + 1 if digest == track.last_digest else 0
        track.last_digest = digest
        if track.repeats >= REPEATED_FRAMES:
            raise _Ended(Failure.NO_MOTION, f"{track.repeats + 1} identical frames in a row")
        try:
            face = self._engine.analyse(
                image,
                self._selection,
                should_stop,
                policy.attack_mode,
                embed=False,
                detection_size=policy.detection_size,
            )
        except FaceServiceError as error:
            return self._unusable(error, capture_time)
        track.multiple = 0
        live = self._judge_attack(face) or policy.attack_mode is not AttackMode.ENFORCE
        self._evidence.record(capture_time, live, repeated=track.repeats > 0)
        pixels = decode.decode(image, decode.read_header(image, min_size=1, max_size=1 << 16), 1)
        self._check_motion(pixels, face)
        state = self._estimator.measure(pixels, face.detection.box, face.detection.landmarks)
        yaw = self._relative_yaw(state)
        track.last_usable = capture_time
        frontal = abs(yaw) < face_state.TURN_YAW / 2
        if frontal:
            self._blinks.observe(state.eye_openness, state.eye_texture, capture_time)
            # Embeddings cost most: the first frontal frame, then a random share of them
            # (an attacker cannot tell which frames are compared).
            if track.anchor is None or self._rng.random() < policy.embed_share:
                face = self._engine.embed_face(pixels, face)
                if self._check_identity(face):
                    track.consistent.append(face)
                best = track.best
                if best is None or enrolment.template_quality(face) > enrolment.template_quality(best):
                    track.best = face
        else:
            self._blinks.interrupt()
        self._advance(state, yaw, frontal, capture_time)
        height, width = pixels.shape[:2]
        centre = face.detection.box.centre
        margin = (1 - CENTRE_SHARE) / 2
        centred = margin * width <= centre.x <= (1 - margin) * width and (
            margin * height <= centre.y <= (1 - margin) * height
        )
        return self._feedback(Advice.OK if centred else Advice.CENTRE_FACE, face)

    def _check_timing(self, capture_time: float) -> None:
        track, policy = self._track, self.policy
        if not math.isfinite(capture_time):
            raise _Ended(Failure.FRAME_TIMING, "a capture time is not a finite number")
        if track.last_capture is not None and capture_time <= track.last_capture:
            raise _Ended(Failure.FRAME_TIMING, "capture times went backwards (or repeated)")
        # Prompt deadlines run on capture time (a replay at the clip's pace through a busy
        # server is not failed for the server's slowness); the lifetime, on the server's
        # clock, bounds what a kiosk claiming slow capture times could stretch them to.
        if track.first_capture is None:
            track.first_capture = capture_time
        track.last_capture = capture_time
        track.capture_times.append(capture_time)
        times = track.capture_times
        if len(times) == RATE_WINDOW:
            rate = (len(times) - 1) / (times[-1] - times[0])
            if not (policy.min_frame_rate <= rate <= policy.max_frame_rate):
                raise _Ended(
                    Failure.FRAME_TIMING,
                    f"frame rate {rate:.1f} is outside {policy.min_frame_rate:g}-{policy.max_frame_rate:g}",
                )

    def _unusable(self, error: FaceServiceError, capture_time: float) -> Feedback:
        """A frame without a usable face: advice, and the session's patience."""
        track = self._track
        if isinstance(error, MultipleFacesError):
            track.multiple += 1
            if track.multiple >= MULTIPLE_FACE_FRAMES:
                raise _Ended(Failure.MULTIPLE_FACES, f"{track.multiple} frames in a row show several faces")
            advice = Advice.ONE_PERSON_ONLY
        elif isinstance(error, NoFaceError):
            advice = Advice.NO_FACE
        elif isinstance(error, FaceTooSmallError | FaceNotScorableError):
            advice = Advice.MOVE_CLOSER
        elif isinstance(error, LowQualityError | LivenessFailedError):
            advice = Advice.IMPROVE_CAPTURE
        elif isinstance(error, PresentationAttackError):
            # Under `enforce`, the engine refuses an attack frame: count it as one.
            track.scored += 1
            track.attacks += 1
            track.live_scores.append(float(error.metadata.get("live_score", 0.0)))
            self._attack_rule()
            advice = Advice.IMPROVE_CAPTURE
        else:
            raise error  # not a face problem: the frame itself is unusable
        since = track.last_usable if track.last_usable is not None else track.first_capture
        if since is not None and capture_time - since > self.policy.face_lost_seconds:
            raise _Ended(
                Failure.FACE_LOST,
                f"no usable face for over {self.policy.face_lost_seconds:g} s ({advice.value})",
            )
        self._check_deadline(capture_time)
        return self._feedback(advice, None)

    def _judge_attack(self, face: AnalysedFace) -> bool:
        """The stage's check on a usable face (under ENFORCE an attack frame was refused
        before this, and counted in _unusable); True when it judged the frame live."""
        track, live = self._track, False
        for check in face.liveness:
            if check.name == ATTACK_CHECK_NAME and (check.passed or check.value > 0):  # value 0: not judged
                track.scored += 1
                track.live_scores.append(check.value)
                track.attack_threshold = check.threshold
                live = check.passed
                if not check.passed:
                    track.attacks += 1
        self._attack_rule()
        return live

    def _attack_rule(self, final: bool = False) -> None:
        track = self._track
        if self.policy.attack_mode is not AttackMode.ENFORCE:
            return
        if (track.scored >= 5 or final) and track.attacks > self.policy.max_attack_share * track.scored:
            raise _Ended(
                Failure.PRESENTATION_ATTACK,
                f"{track.attacks} of {track.scored} frames judged a print or screen",
            )

    def _check_motion(self, pixels: Any, face: AnalysedFace) -> None:
        still = self._still.frame(pixels, face.detection.box)
        if still >= STILL_FRAMES:
            raise _Ended(Failure.NO_MOTION, f"{still + 1} frames show the face without any motion")

    def _relative_yaw(self, state: FaceState) -> float:
        yaws = self._track.yaws
        if len(yaws) < FRONTAL_FRAMES:
            yaws.append(state.yaw)
        return state.yaw - float(np.median(yaws))

    def _identity_limit(self) -> float:
        if self.policy.identity_distance is not None:
            return self.policy.identity_distance
        return self._engine.default_threshold

    def _check_identity(self, face: AnalysedFace) -> bool:
        """Frontal frames must stay near the first frontal frame (a turned head's embedding
        drifts; turned frames are not compared). True when this frame is near it."""
        track = self._track
        if track.anchor is None:
            track.anchor = face.embedding
            return True
        distance = self._engine.distance(face.embedding, track.anchor)
        track.worst_distance = max(track.worst_distance, distance)
        if distance > self._identity_limit():
            track.mismatches += 1
            if track.mismatches >= IDENTITY_MISMATCHES:
                raise _Ended(
                    Failure.IDENTITY_CHANGED,
                    f"{track.mismatches} frames show another face than the first "
                    f"(distance {distance:.3f} > {self._identity_limit():.3f})",
                )
            return False
        return True

    # ---- prompts ---------------------------------------------------------------------

    def _advance(self, state: FaceState, yaw: float, frontal: bool, capture_time: float) -> None:
        if self._current >= len(self._prompts):  # met: waiting for evidence (LiveEvidence)
            return self._check_deadline(capture_time)
        prompt, progress = self._prompts[self._current], self._progress
        if prompt.challenge is Challenge.BLINK:
            since = progress.started_at or 0.0  # set by this prompt's first frame
            progress.value = 1.0 if self._blinks.blinked_since(since) else 0.5 * self._blinks.closing()
        else:
            wanted = 1.0 if prompt.challenge is Challenge.TURN_LEFT else -1.0
            turned = wanted * yaw / face_state.TURN_YAW
            if turned <= -1.0:
                raise _Ended(
                    Failure.WRONG_RESPONSE,
                    f"asked for {prompt.challenge.value}, the head turned the other way",
                )
            progress.value = max(progress.value, min(1.0, max(0.0, turned)))
        if progress.value >= 1.0:
            self._current += 1
            self._progress = _Progress()
            return
        self._check_deadline(capture_time)

    def _check_deadline(self, capture_time: float) -> None:
        started = self._progress.started_at
        if started is not None and capture_time - started > self.policy.prompt_seconds:
            if self._current >= len(self._prompts):
                raise _Ended(Failure.PROMPT_TIMEOUT, f"every prompt met, but {self._evidence.shortfall()}")
            prompt = self._prompts[self._current]
            raise _Ended(
                Failure.PROMPT_TIMEOUT,
                f"prompt {prompt.index} ({prompt.challenge.value}) not met within {prompt.timeout_seconds:g} s",
            )

    def _feedback(self, advice: Advice, face: AnalysedFace | None) -> Feedback:
        index = min(self._current, len(self._prompts) - 1)
        return Feedback(
            advice=advice,
            face=face,
            prompt=self._prompts[index],
            progress=1.0 if self._current >= len(self._prompts) else self._progress.value,
            prompts_met=self._current,
            frame_index=self.frames,
        )

    # ---- the end ---------------------------------------------------------------------

    def _finish(self) -> SessionResult:
        track = self._track
        try:
            self._attack_rule(final=True)
        except _Ended as ended:
            return self._end(ended.failure, ended.detail)
        best = track.best
        if best is None:
            return self._end(Failure.FACE_LOST, "no frontal frame to take the face from")
        templates = self._templates
        verification = (
            self._engine.compare(best, templates.stored, templates.threshold) if templates.stored else None
        )
        identification = (
            self._engine.rank(
                best, templates.gallery, templates.top_k, templates.threshold, self._burst(best)
            )
            if templates.gallery is not None
            else None
        )
        margins = [1.0 - min(1.0, track.worst_distance / self._identity_limit())]
        if track.live_scores:
            threshold = track.attack_threshold
            mean_live = float(np.mean(track.live_scores))
            margins.append(max(0.0, min(1.0, (mean_live - threshold) / max(1e-6, 1.0 - threshold))))
        score = round(50.0 + 50.0 * float(np.mean(margins)), 1)
        claims: dict[str, object] = {
            "v": liveness_token.VERSION,
            "sid": self.session_id,
            "iat": int(time.time()),
            "outcome": "PASSED",
            "score": score,
            "emb": liveness_token.embedding_digest(best.embedding),
        }
        if verification is not None:
            claims["match"] = verification.match
        if identification is not None:
            matched = [m.id for m in identification.matches if m.match]
            claims["identity"] = matched[0] if matched else ""
        result = SessionResult(
            session_id=self.session_id,
            passed=True,
            failure=None,
            detail=f"{len(self._prompts)} prompts met in {self.frames} frames",
            score=score,
            frames=self.frames,
            prompts_met=self._current,
            best=best,
            model=self._engine.info().model,
            verification=verification,
            identification=identification,
            token=self._sign(claims),
            templates=enrolment.from_frames(best, track.consistent, templates.max_templates, self._engine),
        )
        return self._ended(result)

    def _burst(self, best: AnalysedFace) -> list[FloatArray]:
        """The embeddings of the best-quality consistent frames other than `best`, for
        Identify's open-set rule (at most open_set.MAX_FRAMES - 1)."""
        others = sorted(
            (f for f in self._track.consistent if f is not best), key=lambda f: -enrolment.template_quality(f)
        )
        return [f.embedding for f in others[: open_set.MAX_FRAMES - 1]]

    def _end(self, failure: Failure, detail: str) -> SessionResult:
        met = min(self._current, len(self._prompts))
        score = round(min(49.0, 50.0 * met / len(self._prompts)), 1)
        claims: dict[str, object] = {
            "v": liveness_token.VERSION,
            "sid": self.session_id,
            "iat": int(time.time()),
            "outcome": "FAILED",
            "reason": failure.value,
            "score": score,
            "emb": "",
        }
        return self._ended(
            SessionResult(
                session_id=self.session_id,
                passed=False,
                failure=failure,
                detail=detail,
                score=score,
                frames=self.frames,
                prompts_met=met,
                token=self._sign(claims),
            )
        )

    def _sign(self, claims: dict[str, object]) -> str:
        key = self.policy.token_key
        return liveness_token.sign(key, claims) if key is not None else ""

    def _ended(self, result: SessionResult) -> SessionResult:
        self.result = result
        self._track.best = None
        if self._observer is not None:
            self._observer.session_ended(
                "PASSED" if result.passed else "FAILED",
                result.failure.value if result.failure else "",
                result.frames,
            )
        return result


class LivenessSessions:
    """Opens sessions over one engine; shares its Face Mesh (else loads one on first use)."""

    def __init__(
        self,
        engine: FaceEngine,
        settings: Settings,
        estimator_factory: Callable[[], FaceStateEstimator] | None = None,
    ) -> None:
        self._engine = engine
        self.policy = LivenessPolicy.of(settings)
        self.replayable = settings.liveness_replayable  # allowed by liveness_allow_replayable_prompts
        if self.replayable:
            _log.warning("liveness prompts a pre-recorded video can pass: %s", self.replayable)
        self._factory = estimator_factory or (
            lambda: engine.face_mesh or face_state.MeshFaceState(settings.engine_slots)
        )
        self._estimator: FaceStateEstimator | None = None

    def open(
        self,
        templates: SessionTemplates,
        selection: FaceSelection | None,
        frame_rate: float,
        observer: SessionObserver | None = None,
    ) -> LivenessSession:
        if self._estimator is None:
            self._estimator = self._factory()
        return LivenessSession(
            self._engine,
            self._estimator,
            self.policy,
            templates,
            selection,
            frame_rate,
            observer=observer,
        )
