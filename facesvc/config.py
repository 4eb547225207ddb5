"""Settings: every knob of the service, read from FACESVC_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

FaceSelectionName = Literal["reject_multiple", "largest", "central"]
AttackModeName = Literal["off", "report", "enforce"]
LivenessChallengeName = Literal["blink", "turn_left", "turn_right"]


class Settings(BaseSettings):
    """The service's configuration, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="FACESVC_", frozen=True, extra="ignore", use_attribute_docstrings=True
    )

    host: str = "[::]"
    """Address to listen on; `[::]` listens on every IPv4 and IPv6 address."""

    port: int = Field(50051, ge=0, le=65535)
    """gRPC port; 0 picks a free one (tests use that)."""

    model: str = "SFace"
    """Recognition model, in DeepFace's vocabulary: SFace (default, ships offline), Dlib
    (ships offline), or a DeepFace model such as Facenet512 whose weights are downloaded
    or read from `weights_dir`."""

    model_next: str = ""
    """A second shipped model (SFace, Dlib or SFace+Dlib) loaded beside `model` for a
    migration: every confident Verify, Identify or liveness match then also returns the
    next model's template of the face (docs/MODELS.md, "Migrating to a new model"); ""
    (default) loads none, and the calls cost what they always did."""

    model_previous: str = ""
    """The model a migration switched away from, kept loaded while stored templates of it
    remain: they are still compared (by it) and a confident match returns the current
    model's template. "" (default): none."""

    model_upgrade_min_quality: float = Field(50.0, ge=0, le=100)
    """Smallest quality score of a frame whose face is returned as an upgraded template."""

    model_upgrade_requires_live: bool = True
    """Return an upgraded template only from a frame the presentation-attack stage judged
    live (Verify and Identify; a liveness session's face always is). Off only for
    archives of press photos, as when measuring on lfw-devtrain."""

    detector: str = "yunet"
    """Face detector, in DeepFace's vocabulary: yunet (default, ships offline), dlib
    (ships offline), mtcnn (ships offline), or another DeepFace detector."""

    face_selection: FaceSelectionName = "reject_multiple"
    """What to do when a photo shows several faces and the request does not say."""

    verification_threshold: float | None = Field(None, gt=0)
    """Distance at or below which two faces match; unset uses the model's calibrated
    default (see docs/MODELS.md)."""

    identify_fpir: float = Field(0.01, ge=0, lt=1)
    """Identify's default false-positive identification rate: the share of strangers (people
    not in the gallery) answered with a match. The threshold follows the number of distinct
    identities in the gallery so this rate holds at every size (docs/IDENTIFY.md); it must
    be one of the model's published points (Health.open_set). 0 turns the rule off:
    Identify then uses Verify's threshold, as before issue 18."""

    identify_undecided_margin: float = Field(0.0, ge=0, le=0.2)
    """Refuse an Identify (IDENTITY_UNDECIDED, "send another frame") whose best identity's
    distance lies within this much of the open-set threshold, on either side; 0 (default)
    never refuses. On lfw-devtrain at ~1,900 identities, 0.02 refuses 2.7% of employees and
    1.6% of strangers and lowers FPIR 0.76% -> 0.30% and FNIR 4.7% -> 3.6% among the rest
    (`make eval`); a burst lowers FNIR without refusing anyone."""

    enroll_max_images: int = Field(5, ge=1, le=20)
    """The most photos one Enroll takes (`image` and `more_images` together): each costs
    one analysis, so this bounds a request's work; more is TOO_MANY_IMAGES."""

    enroll_max_templates: int = Field(5, ge=1, le=20)
    """The most templates one Enroll or liveness session returns; a request asking for
    more (`max_templates`) gets this many. The open-set rule is calibrated for 1 to 5
    templates per identity (docs/IDENTIFY.md)."""

    min_face_size: int = Field(80, ge=1)
    """Smallest accepted face, in pixels of the original image (shorter box side)."""

    identify_faces_min_face_size: int = Field(40, ge=1)
    """IdentifyFaces: a face smaller than this (shorter box side, pixels of the original
    image) is returned refused TOO_SMALL rather than named. On lfw-devtrain contact sheets
    at 500 identities, faces under 36 px named strangers (3 of 189) and found fewer
    employees (91%); from 36 px on no stranger of 400 was named and 96% were found
    (docs/IDENTIFY.md, `python -m facesvc.tools.evaluate_group --sizes`)."""

    identify_faces_max_faces: int = Field(50, ge=1, le=500)
    """IdentifyFaces: the most faces one call identifies (largest first); a request's
    max_faces above it is lowered to it. Each face costs about one Identify."""

    identify_faces_detection_size: int = Field(1280, ge=160, le=4096)
    """IdentifyFaces: long side, in pixels, a photo is scaled to for its one detection
    (a class photo's faces are small: at 640 px a 4000 px photo's 50 px face is 8 px)."""

    identify_faces_max_seconds: float = Field(10.0, gt=0, le=300)
    """IdentifyFaces: the server's own time budget for one call; faces not reached in time
    are returned refused OUT_OF_TIME (the caller's deadline, when sooner, ends the call)."""

    min_image_size: int = Field(150, ge=1)
    """Smallest accepted image side, in pixels."""

    max_image_size: int = Field(8192, ge=1)
    """Largest accepted image side, in pixels; checked from the header before decoding."""

    max_image_pixels: int = Field(36_000_000, ge=1)
    """Largest accepted width x height, checked from the header before decoding: a 24 MP
    phone photo (5712x4284) passes, a decompression bomb does not. JPEGs decode at
    reduced scale, so a 24 MP photo costs little more than a 6 MP one (`make bench`)."""

    quality_threshold: float = Field(30.0, ge=0, le=100)
    """Smallest accepted quality score (0-100)."""

    enroll_min_quality: float = Field(0.0, ge=0, le=100)
    """Smallest unified quality (Quality.unified, 0-100: 100 minus the predicted % chance a
    genuine comparison of the photo fails) Enroll accepts when a request sets no
    min_quality; 0: no floor beyond quality_threshold (docs/QUALITY.md has the EDC table to
    choose one from). A refusal is LOW_QUALITY naming the weakest component."""

    probe_min_quality: float = Field(0.0, ge=0, le=100)
    """Smallest unified quality Verify and Identify accept of a probe when a request sets
    no min_quality; 0: off. A kiosk that sets it asks for another frame (LOW_QUALITY, with
    the weakest component) instead of answering "no match"."""

    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    """Largest request or response message, in bytes."""

    weights_dir: Path | None = None
    """Folder holding weights of DeepFace models for machines without a network: the
    file DeepFace would download (e.g. facenet512_weights.h5) is looked for here."""

    detection_size: int = Field(640, ge=160, le=4096)
    """Long side, in pixels, the image is scaled to for detection."""

    detect_small_images_upscaled: bool = True
    """Detect a photo whose long side is at most half of detection_size (LFW's 250 px press
    photos, Yale's 320 px scans) at twice its size, for finer landmarks and so a better
    aligned crop: on lfw-devtrain FRR at FAR 0.1% falls from 1.04% to 0.63%, for about 2 ms."""

    detector_min_confidence: float = Field(0.6, ge=0, le=1)
    """Detections below this confidence are ignored altogether."""

    multi_face_size_ratio: float = Field(0.5, gt=0, le=1)
    """Under reject_multiple, a second face counts when its size (square root of its box
    area) is at least this fraction of the largest face's."""

    multi_face_min_confidence: float = Field(0.8, ge=0, le=1)
    """Under reject_multiple, a second face counts only at or above this detector
    confidence."""

    multi_face_sharpness_ratio: float = Field(0.2, ge=0, le=1)
    """Under reject_multiple, a second face counts only when its sharpness (variance of the
    Laplacian) is at least this fraction of the largest face's: a blurred background
    face (celebs img41, img59, img62: 3-9%) does not, a person beside you (couple.jpg:
    70%) does."""

    liveness_checks: bool = True
    """Run the basic liveness checks (blur, lighting, face size, plausible geometry)."""

    liveness_min_sharpness: float = Field(8.0, ge=0, le=100)
    """Sharpness score below which a face is taken for a blurred replay or print."""

    liveness_min_brightness: float = Field(35.0, ge=0, le=255)
    """Mean face intensity (0-255) below which the face is too dark to trust."""

    liveness_max_brightness: float = Field(225.0, ge=0, le=255)
    """Mean face intensity (0-255) above which the face is washed out."""

    presentation_attack: AttackModeName = "enforce"
    """Presentation-attack stage (a print or a screen held to the camera) for Verify,
    Identify and the liveness session, which see live camera frames: `enforce` refuses an
    attack (PRESENTATION_ATTACK), `report` only returns the check, `off` skips the model."""

    presentation_attack_enroll: AttackModeName = "report"
    """The same stage for Enroll, which often gets an existing photo (an HR headshot, a
    scanned ID: photos of photos, which the model often takes for prints). A kiosk that
    enrolls people in front of its camera should set `enforce`."""

    presentation_attack_threshold: float = Field(0.5, gt=0, lt=1)
    """Fused live score (0-1) at or above which a face is taken for a live person (the
    fusion is calibrated to it; docs/PRESENTATION_ATTACK_SIGNALS.md has the rates it gives)."""

    presentation_attack_min_face_size: float = Field(80.0, ge=1)
    """Smallest face, in pixels of the original image, the stage will judge; a smaller
    face is refused with FACE_NOT_SCORABLE ("move closer") under enforce, never passed."""

    presentation_attack_relax_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Comma-separated API keys (each also in api_keys) whose calls may ask for a weaker
    presentation-attack mode than the server's (an archive importer: REPORT or OFF)."""

    presentation_attack_relax_anyone: bool = False
    """Let any caller weaken the presentation-attack mode per request: only for a
    deployment whose every caller is a trusted importer."""

    max_concurrent_rpcs: int | None = Field(None, ge=1, le=1024)
    """FaceService calls in progress at once in each process; beyond it a call is refused
    at once with RESOURCE_EXHAUSTED (reason OVERLOADED) instead of queueing without bound.
    Health and reflection are not counted. Unset: four per core."""

    workers: int | None = Field(None, ge=1, le=2048)
    """Threads serving RPCs in each process. Unset: max_concurrent_rpcs +
    liveness_max_sessions + 8, so health checks and refusals always find a thread while
    the limit is reached."""

    engine_slots: int | None = Field(None, ge=1, le=64)
    """Requests that may run the networks at once in each process; each slot holds its
    own copy of the networks (SFace + YuNet: about 75 MB). Unset: one per core. Further
    requests wait for a free slot."""

    processes: int | None = Field(None, ge=1, le=64)
    """Serving processes sharing the port (SO_REUSEPORT), each with its own engine. Unset:
    one per core for models whose embedding holds the GIL (Dlib), else one (SFace and
    the DeepFace models run on every core from one process)."""

    opencv_threads: int = Field(0, ge=0, le=64)
    """Threads OpenCV may use inside one request; 0 is OpenCV's default, every core. Measured
    here on 640 px frames: a lone request takes 37 ms on both cores against 56 ms on one,
    and throughput at 4 and 8 calls in flight is the same or better (bench/RESULTS.md). In a
    container, set it to the CPU limit: OpenCV counts the machine's cores."""

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Comma-separated API keys. When any is set (here or in api_keys_file), every
    FaceService call needs one, as `authorization: Bearer <key>` or `x-api-key: <key>`
    metadata, else UNAUTHENTICATED. Compared in constant time; never logged."""

    api_keys_file: Path | None = None
    """A file of API keys, one per line (e.g. a mounted Kubernetes secret)."""

    auth_probes: bool = False
    """Require an API key for health checking and reflection too (off: probes stay open)."""

    tls_cert_file: Path | None = None
    """PEM certificate chain; with tls_key_file, the port serves TLS only."""

    tls_key_file: Path | None = None
    """PEM private key of tls_cert_file."""

    tls_client_ca_file: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""

    failure_threshold: int = Field(5, ge=1)
    """Liveness failures and non-matching verifications from one caller (API key, else
    peer address) within failure_window_seconds that raise a security event."""

    failure_window_seconds: float = Field(300.0, gt=0)
    """The window those failures are counted in."""

    throttle_failing_callers: bool = False
    """Refuse a caller that reached failure_threshold with RESOURCE_EXHAUSTED (reason
    CALLER_THROTTLED) until its failures age out of the window."""

    keepalive_time_seconds: float = Field(60.0, gt=0)
    """Ping an idle client connection this often to find dead peers (gRPC keepalive)."""

    keepalive_timeout_seconds: float = Field(20.0, gt=0)
    """Close a connection whose ping is not answered within this time."""

    keepalive_min_client_ping_seconds: float = Field(10.0, gt=0)
    """Clients (or mesh sidecars) may ping at most this often, with or without calls in
    flight; faster pings get the connection closed (GOAWAY too_many_pings)."""

    max_connection_idle_seconds: float = Field(300.0, gt=0)
    """Close connections idle this long, so load balancers rebalance."""

    grace_seconds: float = Field(10.0, ge=0)
    """On SIGTERM, how long in-flight calls may take to finish."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the service's structured logs."""

    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Port of the Prometheus /metrics HTTP endpoint, on the gRPC host's address; unset
    turns metrics off, 0 picks a free one (see docs/OPERATIONS.md)."""

    http_port: int = Field(8000, ge=-1, le=65535)
    """Port of the HTTP door (JSON for every RPC, the original design's /enroll, /verify
    and /health, the liveness WebSocket and the /kiosk page; docs/HTTP.md), on the gRPC
    host's address with the same API keys, TLS files and limits; 0 turns it off, -1 picks
    a free one."""

    http_max_header_bytes: int = Field(16 * 1024, ge=1024)
    """Largest request line and headers of an HTTP request, in bytes (431 beyond): h11's
    and uvicorn's limit; nginx allows 8 KiB a line, Envoy 60 KiB in all."""

    http_max_headers: int = Field(100, ge=8)
    """Most headers one HTTP request may carry (431 beyond): Envoy's default."""

    http_header_timeout_seconds: float = Field(10.0, gt=0)
    """Seconds an HTTP request's line and headers may take to arrive, from its first byte
    (or from the connection's opening); then 408 and the connection closed (nginx's
    client_header_timeout, 60 s, is for proxies in front of slow links)."""

    http_body_timeout_seconds: float = Field(20.0, gt=0)
    """Seconds an HTTP request's body may take to arrive once its headers have (408 and
    closed beyond): a 10 MiB body needs 0.5 MiB/s, a phone's 2 MB photo 100 kB/s. With
    the header timeout, a request trickled a byte a second is cut off within 30 s."""

    http_keepalive_seconds: float = Field(75.0, gt=0)
    """Seconds an idle HTTP keep-alive connection stays open (nginx's keepalive_timeout);
    longer than a load balancer's usual 60 s idle timeout, so it is the balancer that closes."""

    http_max_connections: int = Field(512, ge=1)
    """Open HTTP connections (WebSockets included) served at once in each process; one
    more is answered 429 OVERLOADED with Retry-After and closed (nginx's worker_connections)."""

    http_max_json_depth: int = Field(32, ge=2, le=100)
    """Deepest nesting of arrays and objects in a JSON body or form field (400
    REQUEST_INVALID beyond); facesvc's deepest message needs 5."""

    http_max_json_values: int = Field(1_000_000, ge=1000)
    """Most values (numbers, strings, arrays, objects) in a JSON body or form field (400
    REQUEST_INVALID beyond), counted before parsing: a gallery of 7,000 128-value
    embeddings fits; ten million empty arrays (250 MB of Python lists) do not."""

    http_websocket_idle_seconds: float = Field(10.0, gt=0)
    """Seconds a liveness WebSocket may wait for the caller's next message; then the
    session ends (LIVENESS_SESSION_INVALID) and the socket closes."""

    max_connection_age_seconds: float | None = Field(None, gt=0)
    """Close each client connection after about this long (GOAWAY; calls in flight get
    grace_seconds to finish) so clients balancing over a headless Service re-resolve DNS
    and reach pods added since; unset keeps connections open (see docs/SCALING.md)."""

    templates: Literal["plain", "sealed", "both"] | None = None
    """Templates Enroll hands out and Verify/Identify accept: plain (embedding values; sealed
    templates still open when their key is held), sealed (AES-256-GCM blobs only; plain
    embeddings refused with TEMPLATE_INVALID) or both (Enroll seals, either is accepted: a
    migration). Unset: sealed when template_keys_file is set, else plain (docs/SECURITY.md)."""

    template_keys_file: Path | None = None
    """Key ring for sealed templates: one `id:base64key` line per 32-byte key, the first
    seals, every line opens. Must not be open to group or others (chmod 600); reloaded on
    SIGHUP or when the file changes, without a restart."""

    liveness_challenges: Annotated[tuple[LivenessChallengeName, ...], NoDecode] = (
        "blink",
        "turn_left",
        "turn_right",
    )
    """Comma-separated challenges a liveness session (CheckLiveness) draws its prompts from,
    at random: blink, turn_left, turn_right."""

    liveness_prompts: int = Field(3, ge=1, le=10)
    """Prompts per liveness session; the same challenge is never asked twice in a row
    (unless liveness_challenges allows only one)."""

    liveness_prompt_seconds: float = Field(5.0, gt=0, le=60)
    """Seconds of capture time allowed to meet one prompt."""

    liveness_max_frames: int = Field(300, ge=1)
    """Frames a liveness session accepts; one more ends it FAILED (TOO_MANY_FRAMES)."""

    liveness_max_frame_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    """Largest frame of a liveness session, in bytes (LIVENESS_SESSION_INVALID beyond)."""

    liveness_max_session_seconds: float = Field(30.0, gt=0)
    """Lifetime of a liveness session on the server's clock (SESSION_EXPIRED beyond),
    idle waits for the next frame included."""

    liveness_max_sessions: int | None = Field(None, ge=1, le=1024)
    """Liveness sessions running at once in each process, a bound of their own (each holds
    a worker thread while it runs); beyond it OVERLOADED. Unset: two per core."""

    liveness_min_frame_rate: float = Field(5.0, gt=0)
    """Lowest frame rate (frames per second of capture time) a session accepts."""

    liveness_max_frame_rate: float = Field(60.0, gt=0)
    """Highest frame rate a session accepts."""

    liveness_face_lost_seconds: float = Field(2.0, gt=0)
    """Seconds of capture time without a usable face that end a session (FACE_LOST)."""

    liveness_identity_distance: float | None = Field(None, gt=0)
    """Largest distance between a session frame's embedding and its first frontal frame's
    (IDENTITY_CHANGED beyond); unset uses the verification threshold."""

    liveness_detection_size: int = Field(320, ge=160, le=4096)
    """Long side, in pixels, a liveness frame is scaled to for detection: a kiosk's face
    fills a good part of the frame, and detection at 320 px costs a third of 640's."""

    liveness_embed_share: float = Field(0.5, gt=0, le=1)
    """Share of a session's frontal frames embedded (drawn at random) for the identity
    check and the best frame; the first frontal frame always is. An embedding is the
    largest per-frame cost."""

    liveness_max_attack_share: float = Field(0.2, ge=0, le=1)
    """Share of scored frames the presentation-attack stage may judge an attack before a
    session fails (PRESENTATION_ATTACK)."""

    liveness_token_key: SecretStr | None = None
    """Key of the signed liveness result (HMAC-SHA256, at least 32 bytes); unset: results
    carry no token and a backend cannot tell a real PASSED from a kiosk's claim."""

    liveness_failure_threshold: int = Field(5, ge=1)
    """Failed liveness sessions from one caller within liveness_failure_window_seconds
    after which it is refused (CALLER_THROTTLED) until they age out."""

    liveness_failure_window_seconds: float = Field(180.0, gt=0)
    """The window failed liveness sessions are counted in."""

    liveness_min_live_frames: int = Field(20, ge=1, le=1000)
    """Frames a liveness session must have judged live by the presentation-attack stage
    (under `enforce`; under `report` or `off`, frames with a usable face) before it can
    pass, even when every prompt was met earlier: a replay the stage mostly refuses meets
    the share rule before it can pass (docs/LIVENESS.md, "Evidence before a pass")."""

    liveness_min_live_seconds: float = Field(1.5, ge=0, le=30)
    """Capture seconds those frames must span, first to last, before a session can pass."""

    liveness_allow_replayable_prompts: bool = False
    """Allow liveness_challenges that a pre-recorded video can pass (no turn challenge, or
    only one kind of challenge: a recording of a person blinking naturally passes a
    blink-only session). Without it such a configuration fails at start-up; with it the
    server logs a warning and Health publishes it (docs/LIVENESS.md measures the rates)."""

    @field_validator("model", "detector")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("liveness_challenges", mode="before")
    @classmethod
    def _split_challenges(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("api_keys", "presentation_attack_relax_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @model_validator(mode="after")
    def _image_bounds(self) -> Settings:
        if self.min_image_size > self.max_image_size:
            raise ValueError(
                f"min_image_size ({self.min_image_size}) exceeds max_image_size ({self.max_image_size})"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        for path in (self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file, self.api_keys_file):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} is not a readable file")
        if self.liveness_min_brightness >= self.liveness_max_brightness:
            raise ValueError("liveness_min_brightness must be below liveness_max_brightness")
        relax = {key.get_secret_value() for key in self.presentation_attack_relax_keys}
        if relax - set(self.all_api_keys()):
            raise ValueError("every presentation_attack_relax_keys entry must also be an API key (api_keys)")
        if self.template_mode != "plain" and self.template_keys_file is None:
            raise ValueError(f"templates={self.template_mode} needs template_keys_file (the key ring)")
        if self.template_keys_file is not None and not self.template_keys_file.is_file():
            # Its permissions and every line are checked where the ring is built (server.py).
            raise ValueError(f"{self.template_keys_file} is not a readable file")
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ValueError(f"metrics_port and port are both {self.port}; give metrics its own port")
        if self.http_port > 0 and self.http_port in (self.port, self.metrics_port):
            raise ValueError(f"http_port {self.http_port} is taken by port or metrics_port")
        if not self.liveness_challenges:
            raise ValueError("liveness_challenges needs at least one challenge")
        weakness = self.liveness_replayable
        if weakness and not self.liveness_allow_replayable_prompts:
            raise ValueError(
                f"liveness_challenges {','.join(self.liveness_challenges)}: {weakness}; "
                "set liveness_allow_replayable_prompts to run it anyway"
            )
        if self.liveness_min_frame_rate >= self.liveness_max_frame_rate:
            raise ValueError("liveness_min_frame_rate must be below liveness_max_frame_rate")
        key = self.liveness_token_key
        if key is not None and len(key.get_secret_value().encode()) < 32:
            raise ValueError("liveness_token_key must be at least 32 bytes")
        return self

    @property
    def liveness_replayable(self) -> str:
        """Why liveness_challenges can be passed by a pre-recorded video; "" when they resist one."""
        kinds = set(self.liveness_challenges)
        if not kinds & {"turn_left", "turn_right"}:
            return "without a turn prompt a recording of a person blinking naturally passes"
        if len(kinds) < 2:
            return "with one kind of prompt a recording that shows it passes"
        return ""

    @property
    def template_mode(self) -> str:
        """templates, or its default."""
        return self.templates or ("sealed" if self.template_keys_file is not None else "plain")

    @property
    def liveness_sessions(self) -> int:
        """liveness_max_sessions, or its default."""
        return self.liveness_max_sessions or 2 * (os.cpu_count() or 1)

    @property
    def concurrent_rpcs(self) -> int:
        """max_concurrent_rpcs, or its default."""
        return self.max_concurrent_rpcs or 4 * (os.cpu_count() or 1)

    @property
    def worker_threads(self) -> int:
        """workers, or its default."""
        return self.workers or self.concurrent_rpcs + self.liveness_sessions + 8

    def all_api_keys(self) -> tuple[str, ...]:
        """The keys of api_keys and api_keys_file together."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()]
        return tuple(keys)
