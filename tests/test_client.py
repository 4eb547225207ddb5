"""The Python SDK (client/, facesvc_client) against a real server on port 0 with the real
photos: typed results, one exception class per rejection, deadlines, retries, targets."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import grpc
import pytest
from google.protobuf.message import Message

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer
from facesvc.rpc.servicer import FaceServiceServicer
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from facesvc_client import (
    AsyncFaceClient,
    AuthenticationError,
    Candidate,
    DeadlineExceededError,
    Embedding,
    EmbeddingInvalidError,
    EmbeddingModelMismatchError,
    EngineNotReadyError,
    EnrollResult,
    FaceClient,
    FaceIdentification,
    FaceNotScorableError,
    FaceRefusal,
    FaceSelection,
    FaceServiceError,
    FaceTooSmallError,
    FailedPreconditionError,
    IdentifyFacesResult,
    ImageRejectedError,
    ImageTooLargeError,
    ImageTooSmallError,
    ImageUndecodableError,
    InternalError,
    LivenessFailedError,
    LowQualityError,
    MultipleFacesError,
    NoFaceError,
    PresentationAttackError,
    PresentationAttackInfo,
    PresentationAttackMode,
    PresentationAttackRelaxDeniedError,
    PresentationAttackUnavailableError,
    RequestTooLargeError,
    RetryPolicy,
    ServiceUnavailableError,
    ServingStatus,
    StatusCode,
    TLSConfig,
)
from tests import images
from tests.conftest import CELEBS, ORL, PAD, ROOT, identities, start_server

FAST_RETRIES = RetryPolicy(attempts=40, initial_backoff=0.05, max_backoff=0.25)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def target(server: FaceServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def client(target: str) -> Iterator[FaceClient]:
    with FaceClient(target, timeout=30) as face_client:
        yield face_client


@pytest.fixture(scope="module")
def alice(client: FaceClient) -> Embedding:
    """celebs id00, enrolled from img1.jpg."""
    return client.enroll(CELEBS / "img1.jpg").embedding


RetryLog = Callable[[], list[logging.LogRecord]]


@pytest.fixture
def retries(caplog: pytest.LogCaptureFixture) -> RetryLog:
    """The SDK's "retrying ..." log records so far in this test."""
    caplog.set_level(logging.INFO, logger="facesvc_client")
    return lambda: [
        r for r in caplog.records if r.name == "facesvc_client" and r.getMessage().startswith("retrying")
    ]


@contextmanager
def serving(engine: FaceEngine, **settings: Any) -> Iterator[FaceServer]:
    """One more real server (create_server, as server.py builds it) for one test."""
    face_server = start_server(Settings(port=0, host="127.0.0.1", **settings), engine)
    try:
        yield face_server
    finally:
        face_server.stop(None).wait()


@contextmanager
def servicer_behind(
    engine: FaceEngine,
    interceptors: tuple[grpc.ServerInterceptor, ...] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> Iterator[int]:
    """The real FaceService servicer behind what a deployment puts in front of it (an API
    key check, TLS); create_server offers neither, so this server is assembled here."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    pb_grpc.add_FaceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        FaceServiceServicer(engine, is_serving=lambda: engine.ready), server
    )
    address = "localhost:0" if credentials else "127.0.0.1:0"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait()


# ---- typed results --------------------------------------------------------------------


def _protobuf_inside(value: object) -> bool:
    if isinstance(value, Message):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_protobuf_inside(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, tuple):
        return any(_protobuf_inside(item) for item in value)
    return False


def test_enroll_takes_a_path_bytes_or_a_file_and_returns_frozen_dataclasses(client: FaceClient) -> None:
    path = CELEBS / "img1.jpg"
    results = [
        client.enroll(path),
        client.enroll(str(path)),
        client.enroll(path.read_bytes()),
        client.enroll(io.BytesIO(path.read_bytes())),
    ]
    with path.open("rb") as handle:
        results.append(client.enroll(handle))
    first = results[0]
    assert isinstance(first, EnrollResult) and not _protobuf_inside(first)
    assert all(result.embedding == first.embedding for result in results)
    assert first.embedding.model == "SFace" and first.embedding.dimension == 128
    assert isinstance(first.embedding.values, tuple) and all(
        isinstance(v, float) for v in first.embedding.values
    )
    assert 30 <= first.quality.score <= 100 and first.face.face_count == 1
    assert first.face.box.width > 300 and 0.8 < first.face.confidence <= 1
    assert [check.name for check in first.liveness_checks] == [
        "sharpness",
        "illumination",
        "face_size",
        "plausible_geometry",
        "presentation_attack",  # Enroll reports the stage by default
        "presentation_attack.minifasnet",  # then each signal it fused (issue 19)
        "presentation_attack.spectral_peaks",
    ]
    assert first.presentation_attack is first.liveness_checks[4]
    assert 0 <= first.presentation_attack.value <= 1 and first.presentation_attack.threshold == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.embedding.model = "Dlib"
    json.dumps(first.to_dict())  # plain data all the way down


def test_embedding_round_trips_through_json_and_the_service_sees_the_same_values(
    client: FaceClient, alice: Embedding
) -> None:
    text = alice.to_json()
    assert json.loads(text)["model"] == "SFace"
    restored = Embedding.from_json(text)
    assert restored == alice and hash(restored) == hash(alice)
    live = CELEBS / "img2.jpg"
    assert client.verify(live, restored).distance == client.verify(live, alice).distance
    with pytest.raises(ValueError, match="model"):
        Embedding.from_json('{"values": [0.1, 0.2]}')


def test_verify_genuine_impostor_and_several_templates(client: FaceClient, alice: Embedding) -> None:
    genuine = client.verify(CELEBS / "img2.jpg", alice)  # id00 again
    assert genuine.match and genuine.confidence >= 50 and genuine.model == "SFace"
    assert genuine.distance <= genuine.threshold == pytest.approx(0.634)  # FAR 0.1% on lfw-devtrain
    impostor_template = client.enroll(CELEBS / "img13.jpg").embedding  # id01
    impostor = client.verify(CELEBS / "img2.jpg", impostor_template)
    assert not impostor.match and impostor.confidence < 50
    best = client.verify(CELEBS / "img2.jpg", [impostor_template, alice])
    assert best.match and best.best_template_index == 1
    strict = client.verify(CELEBS / "img2.jpg", alice, threshold=genuine.distance / 2)
    assert not strict.match and strict.threshold == pytest.approx(genuine.distance / 2)


def test_identify_ranks_the_true_identity_first(client: FaceClient) -> None:
    names = identities(CELEBS)
    gallery_photos: dict[str, str] = {}
    for name, who in names.items():
        gallery_photos.setdefault(who, name)
    gallery = {who: client.enroll(CELEBS / name).embedding for who, name in list(gallery_photos.items())[:6]}
    probes = [n for n, who in names.items() if who in gallery and n not in gallery_photos.values()][:8]
    for probe in probes:
        result = client.identify(CELEBS / probe, gallery, top_k=3)
        assert len(result.matches) == 3
        assert [m.distance for m in result.matches] == sorted(m.distance for m in result.matches)
        assert result.best is not None and result.best.id == names[probe], probe
    # Candidate values and several templates per id give one entry per id.
    candidates = [Candidate(who, embedding) for who, embedding in gallery.items()]
    candidates.append(Candidate("id00", client.enroll(CELEBS / "img4.jpg").embedding))
    result = client.identify(CELEBS / "img2.jpg", candidates, top_k=10)
    assert [m.id for m in result.matches].count("id00") == 1 and result.matches[0].id == "id00"
    nobody = client.identify(CELEBS / "img2.jpg", {"id01": gallery["id01"]})
    assert nobody.best is None and len(nobody.matches) == 1 and not nobody.matches[0].match


GROUPS = ROOT.parent / "shared" / "faces" / "groups"


def test_identify_faces_names_everyone_in_a_group_photo_with_typed_results(
    client: FaceClient, target: str
) -> None:
    people = ("friends_chandler", "friends_joey", "friends_ross")
    gallery: dict[str, list[Embedding]] = {}
    for who in people:
        for path in sorted((GROUPS / "enrol" / who).iterdir()):
            try:  # some enrolment photos are under this server's 80 px floor
                gallery.setdefault(who, []).append(
                    client.enroll(path, face_selection=FaceSelection.LARGEST).embedding
                )
            except ImageRejectedError:
                continue
    photo = GROUPS / "group" / "caglarsarikaya-face-recognition-group-photos__all (6).jpg"  # the three
    result = client.identify_faces(photo, gallery, top_k=2)
    assert isinstance(result, IdentifyFacesResult) and not _protobuf_inside(result)
    assert result.face_count == 3 and result.faces_not_returned == 0 and result.gallery_identities == 3
    assert set(result.named) == set(people)
    for face in result.faces:
        assert isinstance(face, FaceIdentification) and face.refusal is None and face.quality is not None
        assert face.best is not None and len(face.matches) == 2 and not face.matches[1].match
    assert json.loads(json.dumps(result.to_dict()))["faces"][0]["refusal"] is None
    one = client.identify_faces(photo, gallery, max_faces=1)
    assert len(one.faces) == 1 and one.faces_not_returned == 2 and one.max_faces == 1
    with pytest.raises(NoFaceError):
        client.identify_faces(images.jpeg(images.load("img1.jpg")[1300:, :]), gallery)

    async def from_asyncio() -> IdentifyFacesResult:
        async with AsyncFaceClient(target, timeout=60) as aio:
            return await aio.identify_faces(photo, gallery)

    assert set(asyncio.run(from_asyncio()).named) == set(people)
    assert FaceRefusal("too_small") is FaceRefusal.TOO_SMALL


def test_health(client: FaceClient) -> None:
    health = client.health()
    assert health.serving and health.status is ServingStatus.SERVING
    assert (health.model, health.embedding_dim, health.detector) == ("SFace", 128, "yunet")
    assert health.default_face_selection is FaceSelection.REJECT_MULTIPLE
    assert health.distance_metric == "cosine" and health.version


def test_face_selection_takes_one_of_two_faces(client: FaceClient) -> None:
    with pytest.raises(MultipleFacesError):
        client.enroll(CELEBS / "couple.jpg")
    result = client.enroll(CELEBS / "couple.jpg", face_selection=FaceSelection.LARGEST)
    assert result.face.face_count == 2


def test_the_sdk_needs_none_of_the_servers_weight() -> None:
    """Installed dependencies are grpcio, grpcio-status and protobuf, and importing the SDK
    (CLI included) loads no model library and not the server package."""
    from importlib import metadata

    requires = {r.split(";")[0].split("==")[0].strip() for r in metadata.requires("facesvc-client") or []}
    extras = {
        r.split(";")[0].split("==")[0].strip()
        for r in metadata.requires("facesvc-client") or []
        if "extra" in r
    }
    assert requires - extras == {"grpcio", "grpcio-status", "protobuf"}
    probe = (
        "import sys, facesvc_client, facesvc_client.cli; "
        "heavy = {'cv2', 'tensorflow', 'deepface', 'dlib', 'numpy', 'PIL', 'facesvc'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


# ---- one exception class per rejection, from real inputs -----------------------------


REJECTIONS = [
    ("undecodable", lambda: b"not an image at all", ImageUndecodableError, "IMAGE_UNDECODABLE", {}),
    (
        "orl-too-small",
        lambda: (ORL / "s1" / "1.png").read_bytes(),
        ImageTooSmallError,
        "IMAGE_TOO_SMALL",
        {"width": "92"},
    ),
    (
        "bomb-too-large",
        lambda: images.png_header_only(50_000, 50_000),
        ImageTooLargeError,
        "IMAGE_TOO_LARGE",
        {"width": "50000"},
    ),
    (
        "no-face",
        lambda: images.jpeg(images.load("img1.jpg")[1300:, :]),
        NoFaceError,
        "NO_FACE",
        {"face_count": "0"},
    ),
    (
        "couple",
        lambda: (CELEBS / "couple.jpg").read_bytes(),
        MultipleFacesError,
        "MULTIPLE_FACES",
        {"face_count": "2"},
    ),
    (
        "face-too-small",
        lambda: images.shrunk("img27.jpg", 400),
        FaceTooSmallError,
        "FACE_TOO_SMALL",
        {"min_face_size": "80"},
    ),
    ("low-quality", lambda: images.blurred("img1.jpg", 12, 0.12), LowQualityError, "LOW_QUALITY", {}),
    ("dark", lambda: images.darkened("img1.jpg", 0.15), LivenessFailedError, "LIVENESS_FAILED", {}),
]


def _assert_sdk_error(error: FaceServiceError, code: StatusCode, reason: str | None, method: str) -> None:
    assert (error.code, error.reason, error.method) == (code, reason, method)
    assert isinstance(error.code, StatusCode) and error.message
    # No grpc type escapes, not even as the cause or context of the SDK's exception.
    assert error.__cause__ is None and error.__context__ is None
    assert not isinstance(error, grpc.RpcError)


@pytest.mark.parametrize(
    ("data", "cls", "reason", "figures"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_each_photo_rejection_raises_its_class(
    client: FaceClient, data: Any, cls: type[FaceServiceError], reason: str, figures: dict[str, str]
) -> None:
    with pytest.raises(cls) as caught:
        client.enroll(data())
    error = caught.value
    assert type(error) is cls and isinstance(error, ImageRejectedError)
    _assert_sdk_error(error, StatusCode.INVALID_ARGUMENT, reason, "Enroll")
    assert figures.items() <= error.metadata.items()
    assert reason in str(error)


def test_embedding_invalid(client: FaceClient) -> None:
    with pytest.raises(EmbeddingInvalidError) as caught:
        client.verify(CELEBS / "img1.jpg", Embedding((0.1,) * 127, "SFace"))
    _assert_sdk_error(caught.value, StatusCode.INVALID_ARGUMENT, "EMBEDDING_INVALID", "Verify")
    assert caught.value.metadata["length"] == "127"
    with pytest.raises(EmbeddingInvalidError):
        client.identify(CELEBS / "img1.jpg", {"a": Embedding((0.1,) * 128, "SFace")}, top_k=-1)


def test_embedding_model_mismatch(client: FaceClient, alice: Embedding) -> None:
    foreign = Embedding((0.1,) * 512, "Facenet512")
    with pytest.raises(EmbeddingModelMismatchError) as caught:
        client.verify(CELEBS / "img2.jpg", [alice, foreign])
    _assert_sdk_error(caught.value, StatusCode.INVALID_ARGUMENT, "EMBEDDING_MODEL_MISMATCH", "Verify")
    assert caught.value.metadata["embedding_model"] == "Facenet512"
    # A gallery of two models goes as Candidate messages, so the service names the entry.
    dlib = Embedding((0.1,) * 128, "Dlib")
    with pytest.raises(EmbeddingModelMismatchError) as caught:
        client.identify(CELEBS / "img2.jpg", [Candidate("alice", alice), Candidate("bob", dlib)])
    assert caught.value.metadata["index"] == "1"


def test_request_too_large(client: FaceClient) -> None:
    with pytest.raises(RequestTooLargeError) as caught:
        client.enroll(b"\xff" * (11 * 1024 * 1024))
    _assert_sdk_error(caught.value, StatusCode.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE", "Enroll")
    assert caught.value.metadata["max_message_bytes"] == str(10 * 1024 * 1024)


def test_deadline_exceeded_is_the_sdk_timeout_error(client: FaceClient) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        client.enroll(CELEBS / "img1.jpg", timeout=0.001)
    assert time.monotonic() - started < 1
    assert isinstance(caught.value, TimeoutError)  # `except TimeoutError` works too
    _assert_sdk_error(caught.value, StatusCode.DEADLINE_EXCEEDED, None, "Enroll")


def test_engine_not_ready(settings: Settings) -> None:
    """A server whose engine has not loaded yet answers UNAVAILABLE / ENGINE_NOT_READY."""
    with (
        serving(FaceEngine(settings)) as loading,
        FaceClient(f"127.0.0.1:{loading.port}", retries=0) as client,
    ):
        assert client.health().status is ServingStatus.NOT_SERVING  # Health still answers
        with pytest.raises(EngineNotReadyError) as caught:
            client.enroll(CELEBS / "img1.jpg")
    assert isinstance(caught.value, ServiceUnavailableError)
    _assert_sdk_error(caught.value, StatusCode.UNAVAILABLE, "ENGINE_NOT_READY", "Enroll")


def test_nothing_listening_is_service_unavailable() -> None:
    with (
        FaceClient(f"127.0.0.1:{free_port()}", retries=0) as client,
        pytest.raises(ServiceUnavailableError) as caught,
    ):
        client.health()
    assert type(caught.value) is ServiceUnavailableError
    _assert_sdk_error(caught.value, StatusCode.UNAVAILABLE, None, "Health")


class BrokenEngine(FaceEngine):
    """A real engine with a bug planted in enroll, to see what a caller gets from INTERNAL."""

    def enroll(self, *args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("planted bug: /tmp/secret-path must not reach the caller")


def test_internal(settings: Settings) -> None:
    engine = BrokenEngine(settings)
    engine.load()
    with (
        serving(engine) as broken,
        FaceClient(f"127.0.0.1:{broken.port}") as client,
        pytest.raises(InternalError) as caught,
    ):
        client.enroll(CELEBS / "img1.jpg")
    _assert_sdk_error(caught.value, StatusCode.INTERNAL, "INTERNAL", "Enroll")
    assert "secret" not in str(caught.value)


class RequireApiKey(grpc.ServerInterceptor):  # type: ignore[misc]
    """What an API gateway does in front of the service: no key, no call."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[str | None] = []

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        presented = dict(details.invocation_metadata).get("x-api-key")
        self.seen.append(presented)
        if presented == self.key:
            return continuation(details)

        def refuse(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key")

        return grpc.unary_unary_rpc_method_handler(refuse)


def test_api_key_is_sent_and_a_refusal_is_an_authentication_error(engine: FaceEngine) -> None:
    gate = RequireApiKey("s3cret")
    with servicer_behind(engine, interceptors=(gate,)) as port:
        with FaceClient(f"127.0.0.1:{port}", api_key="s3cret") as client:
            assert client.enroll(CELEBS / "img1.jpg").embedding.dimension == 128
        with FaceClient(f"127.0.0.1:{port}") as client, pytest.raises(AuthenticationError) as caught:
            client.health()
    assert gate.seen == ["s3cret", None]
    _assert_sdk_error(caught.value, StatusCode.UNAUTHENTICATED, None, "Health")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_with_a_private_root(engine: FaceEngine, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    with servicer_behind(engine, credentials=credentials) as port:
        with FaceClient(f"localhost:{port}", tls=TLSConfig(root_certificates=cert.read_bytes())) as client:
            assert client.health().serving
        with (
            FaceClient(f"localhost:{port}", tls=True, retries=0) as client,
            pytest.raises(ServiceUnavailableError),
        ):
            client.health()  # a self-signed certificate is not among the system's roots


# ---- retries, deadlines and targets --------------------------------------------------


def test_retries_until_the_engine_has_loaded(settings: Settings, retries: RetryLog) -> None:
    engine = FaceEngine(settings)
    with serving(engine) as starting:

        def finish_loading() -> None:
            time.sleep(0.5)
            engine.load()
            starting.set_serving()

        loader = threading.Thread(target=finish_loading)
        loader.start()
        try:
            with FaceClient(f"127.0.0.1:{starting.port}", timeout=60, retries=FAST_RETRIES) as client:
                result = client.enroll(CELEBS / "img1.jpg")
        finally:
            loader.join()
    assert result.embedding.dimension == 128
    retried = retries()
    assert retried and all(r.reason == "ENGINE_NOT_READY" for r in retried)  # type: ignore[attr-defined]
    assert [r.attempt for r in retried] == list(range(2, len(retried) + 2))  # type: ignore[attr-defined]


def test_retries_until_the_server_listens(engine: FaceEngine, retries: RetryLog) -> None:
    port = free_port()
    started: list[FaceServer] = []
    opener = threading.Timer(
        0.8, lambda: started.append(start_server(Settings(port=port, host="127.0.0.1"), engine))
    )
    opener.start()
    try:
        with FaceClient(f"127.0.0.1:{port}", timeout=60, retries=FAST_RETRIES) as client:
            assert client.enroll(CELEBS / "img1.jpg").embedding.dimension == 128
    finally:
        opener.join()
        for face_server in started:
            face_server.stop(None).wait()
    retried = retries()
    assert retried and all(r.reason == "UNAVAILABLE" for r in retried)  # type: ignore[attr-defined]


def test_rejections_are_not_retried(client: FaceClient, retries: RetryLog) -> None:
    with pytest.raises(MultipleFacesError):
        client.enroll(CELEBS / "couple.jpg")
    assert retries() == []


def test_retries_stop_after_the_attempts_and_within_the_deadline(retries: RetryLog) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    policy = RetryPolicy(attempts=3, initial_backoff=0.05, max_backoff=0.05)
    with FaceClient(nowhere, retries=policy) as client, pytest.raises(ServiceUnavailableError):
        client.health()
    assert len(retries()) == 2
    many = RetryPolicy(attempts=1000, initial_backoff=0.1, max_backoff=0.1)
    started = time.monotonic()
    with FaceClient(nowhere, timeout=1.0, retries=many) as client, pytest.raises(ServiceUnavailableError):
        client.health()
    assert time.monotonic() - started < 2.0


def test_several_targets_rotate_and_an_unavailable_one_is_skipped(
    target: str, settings: Settings, retries: RetryLog
) -> None:
    with serving(FaceEngine(settings)) as loading:
        pair = [target, f"127.0.0.1:{loading.port}"]
        with FaceClient(pair, retries=FAST_RETRIES) as client:
            # Calls go to targets whose connection is READY, in turn: once both channels have
            # connected (the second may still be connecting at the first call), both answer.
            seen: set[ServingStatus] = set()
            deadline = time.monotonic() + 10
            while len(seen) < 2 and time.monotonic() < deadline:
                seen |= {client.health().status for _ in range(2)}
                time.sleep(0.05)
            assert seen == {ServingStatus.SERVING, ServingStatus.NOT_SERVING}
            for _ in range(2):  # one of the two lands on the loading server and moves on
                assert client.enroll(CELEBS / "img1.jpg").embedding.dimension == 128
    assert [r.reason for r in retries()] == ["ENGINE_NOT_READY"]  # type: ignore[attr-defined]


def test_dns_name_with_round_robin(server: FaceServer) -> None:
    # localhost resolves to 127.0.0.1 and perhaps ::1; round_robin uses whichever answer.
    with FaceClient(f"dns:///localhost:{server.port}") as client:
        assert all(client.health().serving for _ in range(3))


# ---- presentation attacks (prints held to the camera) ------------------------------------

NUAA = PAD / "nuaa"
LARGEST = FaceSelection.LARGEST  # some NUAA frames show a second person in the background
KIOSK_KEY, IMPORTER_KEY = "kiosk-key", "importer-key"


def nuaa(kind: str, subject: str) -> list[Path]:
    """NUAA frames of one subject: kind "ClientRaw" (live webcam) or "ImposterRaw" (prints)."""
    frames = sorted((NUAA / kind / subject).glob("*.jpg"))
    assert frames, f"no NUAA frames in {NUAA / kind / subject}"
    return frames


@dataclasses.dataclass(frozen=True)
class Kiosk:
    """A server with the stage's shipped defaults (ENFORCE for Verify and Identify, REPORT
    for Enroll; the shared test server only reports it, see conftest), behind API keys,
    of which only the importer's may relax the stage."""

    target: str

    def client(self, key: str = KIOSK_KEY, **options: Any) -> FaceClient:
        return FaceClient(self.target, api_key=key, timeout=30, **options)


@pytest.fixture(scope="module")
def kiosk() -> Iterator[Kiosk]:
    settings = Settings(
        port=0,
        host="127.0.0.1",
        presentation_attack="enforce",
        presentation_attack_enroll="report",
        api_keys=f"{KIOSK_KEY},{IMPORTER_KEY}",
        presentation_attack_relax_keys=IMPORTER_KEY,
        # Above the image floor (80), so a face between the two is one the stage cannot judge.
        presentation_attack_min_face_size=105,
    )
    engine = FaceEngine(settings)
    engine.load()
    face_server = start_server(settings, engine)
    try:
        yield Kiosk(f"127.0.0.1:{face_server.port}")
    finally:
        face_server.stop(None).wait()


@pytest.fixture(scope="module")
def nuaa_0001(kiosk: Kiosk) -> Embedding:
    """NUAA subject 0001, enrolled from its first live frame."""
    with kiosk.client() as client:
        return client.enroll(nuaa("ClientRaw", "0001")[0], face_selection=LARGEST).embedding


def too_close() -> bytes:
    """A live NUAA frame cut down to little more than the face (selfie framing): no 2.7x
    context around it, and the stage judges it all the same."""
    pixels = cv2.imread(str(nuaa("ClientRaw", "0001")[0]))
    assert pixels is not None
    return images.jpeg(pixels[100:360, 245:440])  # the face box is about x 269-414, y 129-329


def too_small() -> bytes:
    """A live NUAA frame at 0.62x: a 90 px face, over the image floor (80) and under the
    kiosk's stage floor (105): the stage cannot judge it (the kiosk should say "move closer")."""
    pixels = cv2.imread(str(nuaa("ClientRaw", "0001")[0]))
    assert pixels is not None
    return images.jpeg(cv2.resize(pixels, None, fx=0.62, fy=0.62))


def test_health_describes_the_stage(kiosk: Kiosk) -> None:
    with kiosk.client() as client:
        info = client.health().presentation_attack
    assert info == PresentationAttackInfo(
        mode=PresentationAttackMode.ENFORCE,
        enroll_mode=PresentationAttackMode.REPORT,
        threshold=0.5,
        model="MiniFASNetV2+MiniFASNetV1SE+signals",
        min_face_size=105.0,
        relaxable=True,
    )


def test_verify_refuses_prints_by_default(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    """The first 20 print attacks of subject 0001, each against 0001's own template: the
    model's measured APCER is 0.01%, so every one is refused, by its own class."""
    attacks = nuaa("ImposterRaw", "0001")[:20]
    refused: list[PresentationAttackError] = []
    with kiosk.client() as client:
        for frame in attacks:
            with pytest.raises(PresentationAttackError) as caught:
                client.verify(frame, nuaa_0001, face_selection=LARGEST)
            refused.append(caught.value)
    assert len(refused) == len(attacks) == 20
    for error in refused:
        assert type(error) is PresentationAttackError and isinstance(error, ImageRejectedError)
        _assert_sdk_error(error, StatusCode.INVALID_ARGUMENT, "PRESENTATION_ATTACK", "Verify")
        assert error.live_score is not None and error.threshold == 0.5
        assert 0 <= error.live_score < error.threshold
        assert error.model == "MiniFASNetV2+MiniFASNetV1SE+signals"
        assert "PRESENTATION_ATTACK" in str(error) and "live_score=" in str(error)


def test_identify_refuses_prints_by_default(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    with kiosk.client() as client:
        for subject in ("0001", "0002", "0003"):
            for frame in nuaa("ImposterRaw", subject)[:3]:
                with pytest.raises(PresentationAttackError) as caught:
                    client.identify(frame, {"0001": nuaa_0001}, face_selection=LARGEST)
                _assert_sdk_error(
                    caught.value, StatusCode.INVALID_ARGUMENT, "PRESENTATION_ATTACK", "Identify"
                )


def test_live_frames_pass_and_match_their_person(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    """Live webcam frames pass the enforced stage: Verify of ten more frames of 0001, and
    Identify of three more frames of each of the seven subjects in a gallery of all."""
    with kiosk.client() as client:
        for frame in nuaa("ClientRaw", "0001")[1:11]:
            result = client.verify(frame, nuaa_0001, face_selection=LARGEST)
            check = result.presentation_attack
            assert result.match, frame.name
            assert check is not None and check.passed and check.value >= check.threshold == 0.5, frame.name
        subjects = [f"000{n}" for n in range(1, 8)]
        gallery = {
            s: client.enroll(nuaa("ClientRaw", s)[0], face_selection=LARGEST).embedding for s in subjects
        }
        for subject in subjects:
            for frame in nuaa("ClientRaw", subject)[1:4]:
                found = client.identify(frame, gallery, face_selection=LARGEST)
                assert found.best is not None and found.best.id == subject, frame.name
                assert found.presentation_attack is not None and found.presentation_attack.passed


def test_enroll_reports_by_default_and_enforces_when_asked(kiosk: Kiosk) -> None:
    """Enroll often gets an existing photo, so the server only reports the stage there: the
    print is enrolled with the failed check attached; ENFORCE (always allowed) refuses it."""
    attack = nuaa("ImposterRaw", "0001")[0]
    with kiosk.client() as client:
        reported = client.enroll(attack, face_selection=LARGEST)
        check = reported.presentation_attack
        assert check is not None and not check.passed and check.value < 0.5 == check.threshold
        assert check.name == "presentation_attack" and check.detail
        as_json = next(c for c in reported.to_dict()["liveness_checks"] if c["name"] == "presentation_attack")
        assert (as_json["name"], as_json["passed"], as_json["value"]) == (
            "presentation_attack",
            False,
            check.value,
        )
        with pytest.raises(PresentationAttackError) as caught:
            client.enroll(attack, face_selection=LARGEST, presentation_attack=PresentationAttackMode.ENFORCE)
        _assert_sdk_error(caught.value, StatusCode.INVALID_ARGUMENT, "PRESENTATION_ATTACK", "Enroll")


def test_weaker_modes_only_for_a_caller_allowed_to_relax(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    attack = nuaa("ImposterRaw", "0001")[0]
    denied: list[PresentationAttackRelaxDeniedError] = []
    with kiosk.client(KIOSK_KEY) as kiosk_client:
        for mode in (PresentationAttackMode.REPORT, PresentationAttackMode.OFF):
            with pytest.raises(PresentationAttackRelaxDeniedError) as caught:
                kiosk_client.verify(attack, nuaa_0001, face_selection=LARGEST, presentation_attack=mode)
            denied.append(caught.value)
        with pytest.raises(PresentationAttackRelaxDeniedError) as caught:
            kiosk_client.enroll(
                attack, face_selection=LARGEST, presentation_attack=PresentationAttackMode.OFF
            )
        denied.append(caught.value)
    for error, method in zip(denied, ("Verify", "Verify", "Enroll"), strict=True):
        assert isinstance(error, AuthenticationError)  # a PERMISSION_DENIED, like other key refusals
        _assert_sdk_error(error, StatusCode.PERMISSION_DENIED, "PRESENTATION_ATTACK_RELAX_DENIED", method)
    assert [e.metadata["requested"] for e in denied] == ["report", "off", "off"]
    assert [e.metadata["server_mode"] for e in denied] == ["enforce", "enforce", "report"]

    with kiosk.client(IMPORTER_KEY) as importer:
        # REPORT: the print of 0001 matches 0001 (which is why the stage matters), and
        # the check says what it is.
        reported = importer.verify(
            attack, nuaa_0001, face_selection=LARGEST, presentation_attack=PresentationAttackMode.REPORT
        )
        assert reported.match
        assert reported.presentation_attack is not None and not reported.presentation_attack.passed
        assert reported.presentation_attack.value < 0.5
        # OFF: no such check at all, on any RPC.
        skipped = [
            importer.verify(
                attack, nuaa_0001, face_selection=LARGEST, presentation_attack=PresentationAttackMode.OFF
            ),
            importer.identify(
                attack,
                {"0001": nuaa_0001},
                face_selection=LARGEST,
                presentation_attack=PresentationAttackMode.OFF,
            ),
            importer.enroll(attack, face_selection=LARGEST, presentation_attack=PresentationAttackMode.OFF),
        ]
    for result in skipped:
        assert result.presentation_attack is None
        assert "presentation_attack" not in [check.name for check in result.liveness_checks]
        assert len(result.liveness_checks) == 4


def test_a_face_that_fills_the_frame_is_judged(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    with kiosk.client() as client:
        verified = client.verify(too_close(), nuaa_0001, face_selection=LARGEST)
    check = verified.presentation_attack
    assert check is not None and check.passed
    names = [c.name for c in verified.liveness_checks]
    assert "presentation_attack.minifasnet" in names and "presentation_attack.spectral_peaks" in names


def test_a_face_under_the_stages_floor_is_not_scorable(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    with kiosk.client() as client:
        with pytest.raises(FaceNotScorableError) as caught:
            client.verify(too_small(), nuaa_0001, face_selection=LARGEST)
        reported = client.enroll(too_small(), face_selection=LARGEST)  # REPORT: attached, not refused
    error = caught.value
    assert type(error) is FaceNotScorableError and isinstance(error, ImageRejectedError)
    _assert_sdk_error(error, StatusCode.INVALID_ARGUMENT, "FACE_NOT_SCORABLE", "Verify")
    assert error.cause == "too_small" and error.min_face_size == 105
    assert error.face_size is not None and 80 <= error.face_size < error.min_face_size
    check = reported.presentation_attack
    assert check is not None and not check.passed and check.detail.startswith("cannot judge")


def test_asking_for_the_stage_where_the_server_runs_it_off(settings: Settings) -> None:
    off = Settings(port=0, host="127.0.0.1", presentation_attack="off", presentation_attack_enroll="off")
    engine = FaceEngine(off)
    engine.load()
    face_server = start_server(off, engine)
    try:
        with FaceClient(f"127.0.0.1:{face_server.port}", timeout=30) as client:
            info = client.health().presentation_attack
            assert info is not None and (info.mode, info.enroll_mode, info.model) == (
                PresentationAttackMode.OFF,
                PresentationAttackMode.OFF,
                "",
            )
            assert client.enroll(CELEBS / "img1.jpg").presentation_attack is None
            with pytest.raises(PresentationAttackUnavailableError) as caught:
                client.enroll(CELEBS / "img1.jpg", presentation_attack=PresentationAttackMode.REPORT)
    finally:
        face_server.stop(None).wait()
    assert isinstance(caught.value, FailedPreconditionError)
    _assert_sdk_error(
        caught.value, StatusCode.FAILED_PRECONDITION, "PRESENTATION_ATTACK_UNAVAILABLE", "Enroll"
    )


def test_async_client_passes_the_mode_and_raises_the_same_classes(kiosk: Kiosk, nuaa_0001: Embedding) -> None:
    attack, live = nuaa("ImposterRaw", "0001")[0], nuaa("ClientRaw", "0001")[1]

    async def scenario() -> None:
        async with AsyncFaceClient(kiosk.target, api_key=KIOSK_KEY, timeout=30) as client:
            assert (await client.verify(live, nuaa_0001, face_selection=LARGEST)).match
            with pytest.raises(PresentationAttackError):
                await client.verify(attack, nuaa_0001, face_selection=LARGEST)
            with pytest.raises(PresentationAttackError):
                await client.identify(attack, {"0001": nuaa_0001}, face_selection=LARGEST)
            with pytest.raises(PresentationAttackError):
                await client.enroll(
                    attack, face_selection=LARGEST, presentation_attack=PresentationAttackMode.ENFORCE
                )
            with pytest.raises(PresentationAttackRelaxDeniedError):
                await client.enroll(
                    attack, face_selection=LARGEST, presentation_attack=PresentationAttackMode.OFF
                )
            with pytest.raises(FaceNotScorableError):
                await client.verify(too_small(), nuaa_0001, face_selection=LARGEST)
        async with AsyncFaceClient(kiosk.target, api_key=IMPORTER_KEY, timeout=30) as importer:
            skipped = await importer.verify(
                attack, nuaa_0001, face_selection=LARGEST, presentation_attack=PresentationAttackMode.OFF
            )
            assert skipped.match and skipped.presentation_attack is None

    asyncio.run(scenario())


# ---- asyncio ----------------------------------------------------------------------------


def test_async_client(target: str, settings: Settings, retries: RetryLog) -> None:
    async def scenario() -> None:
        async with AsyncFaceClient(target, timeout=30) as client:
            assert (await client.health()).serving
            alice = (await client.enroll(CELEBS / "img1.jpg")).embedding
            results = await asyncio.gather(
                client.verify(CELEBS / "img2.jpg", alice),
                client.identify((CELEBS / "img4.jpg").read_bytes(), {"alice": alice}),
            )
            assert results[0].match and results[1].best is not None and results[1].best.id == "alice"
            with pytest.raises(MultipleFacesError) as caught:
                await client.enroll(CELEBS / "couple.jpg")
            _assert_sdk_error(caught.value, StatusCode.INVALID_ARGUMENT, "MULTIPLE_FACES", "Enroll")
            with pytest.raises(DeadlineExceededError):
                await client.enroll(CELEBS / "img1.jpg", timeout=0.001)

        engine = FaceEngine(settings)
        with serving(engine) as starting:
            async with AsyncFaceClient(f"127.0.0.1:{starting.port}", retries=FAST_RETRIES) as client:
                call = asyncio.ensure_future(client.enroll(CELEBS / "img1.jpg", timeout=60))
                await asyncio.sleep(0.5)
                await asyncio.to_thread(engine.load)
                starting.set_serving()
                assert (await call).embedding.dimension == 128

    asyncio.run(scenario())
    assert retries()


def test_enroll_with_several_photos_returns_several_templates_sync_and_async(
    target: str, client: FaceClient
) -> None:
    """celebs id00's photos (img1 first) give up to max_templates templates, best first,
    each a real SFace embedding of a distinct photo that matches a photo left out."""
    photos = [CELEBS / name for name in ("img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg")]
    assert {identities(CELEBS)[p.name] for p in photos} == {identities(CELEBS)["img10.jpg"]}

    async def from_asyncio() -> tuple[EnrollResult, EnrollResult]:
        async with AsyncFaceClient(target, timeout=60) as aio:
            return (
                await aio.enroll(photos[0], more_images=photos[1:], max_templates=3),
                await aio.enroll(photos[0], more_images=photos[1:], max_templates=1),
            )

    several, one = asyncio.run(from_asyncio())
    assert 2 <= len(several.templates) <= 3 and len(one.templates) == 1
    assert several.templates[0].embedding == several.embedding == one.embedding
    indices = [t.image_index for t in several.templates]
    assert len(set(indices)) == len(indices) and all(0 <= i < len(photos) for i in indices)
    assert all(isinstance(t.embedding, Embedding) and t.embedding.dimension == 128 for t in several.templates)
    assert len({t.embedding for t in several.templates}) == len(several.templates)
    for template in several.embeddings:
        assert client.verify(CELEBS / "img10.jpg", template).match
    # The sync client sends the same request and gets the same templates.
    assert client.enroll(photos[0], more_images=photos[1:], max_templates=3).templates == several.templates


def test_the_generated_stubs_are_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "client" / "scripts" / "generate_stubs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_a_liveness_session_carries_every_kind_of_gallery_it_can() -> None:
    """LivenessStart has candidates and a packed gallery but no sealed one: sealed
    templates travel as Candidate messages (the service opens them), a PackedGallery as
    itself (float16 included), and a SealedGallery is refused by the SDK rather than dropped."""
    from facesvc_client import PackedGallery, SealedGallery, SealedTemplate, liveness

    sealed = {
        "ann": SealedTemplate(b"\x01" * 48, "SFace", "k1"),
        "bob": SealedTemplate(b"\x02" * 48, "SFace", "k1"),
    }
    start = liveness.start_request(None, sealed, 1, None, None, 15.0).start
    assert [c.id for c in start.candidates] == ["ann", "bob"]
    assert [c.embedding.sealed for c in start.candidates] == [b"\x01" * 48, b"\x02" * 48]
    plain = {"ann": Embedding([0.25] * 128, "SFace"), "bob": Embedding([0.5] * 128, "SFace")}
    packed = PackedGallery.of(plain, half=True)
    start = liveness.start_request(None, packed, 1, None, None, 15.0).start
    assert list(start.packed_candidates.ids) == ["ann", "bob"] and len(start.packed_candidates.values) == 512
    assert start.packed_candidates.encoding == 2  # PACKED_ENCODING_FLOAT16
    start = liveness.start_request(None, plain, 1, None, None, 15.0).start
    assert len(start.packed_candidates.values) == 1024 and not start.candidates
    with pytest.raises(TypeError, match="SealedGallery"):
        liveness.start_request(None, SealedGallery(b"blob"), 1, None, None, 15.0)
