"""The HTTP door against real servers on ephemeral ports: the original design's README
requests as written (real `curl -F` against server.py as `make run` starts it), every RPC
as JSON with the same reasons as gRPC, the same guards on both doors, the liveness
WebSocket, and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.http.routes import routes
from facesvc.http.server import HttpServer
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests import certs, images
from tests.conftest import (
    CELEBS,
    ROOT,
    log_lines,
    photo,
    rejection,
    spawn_server,
    start_server,
)

LIVENESS = ROOT.parent / "shared" / "liveness"
BLINK_CLIP = LIVENESS / "blink" / "mahie_test_4_low_fps.avi"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")
NO_FACE_IMAGE = images.jpeg(images.load("img1.jpg")[1300:, :])  # clothes and background
LOW_QUALITY_IMAGE = images.blurred("img1.jpg", 12, 0.12)
KEY = "http-test-key-0123456789"


class Door:
    """A gRPC server and its HTTP door, in this process, over the shared engine's models."""

    def __init__(self, engine: FaceEngine, **overrides: Any) -> None:
        self.settings = Settings(port=0, host="127.0.0.1", http_port=-1, metrics_port=0, **overrides)
        self.server: FaceServer = start_server(self.settings, engine.sharing_models(self.settings))
        self.http = HttpServer(self.settings, self.server)
        self.http.start()
        scheme = "https" if self.http.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.http.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def stop(self) -> None:
        self.http.stop().wait(10)
        self.server.stop(None).wait()


@pytest.fixture(scope="module")
def door(engine: FaceEngine) -> Iterator[Door]:
    opened = Door(
        engine,
        liveness_challenges=("blink",),
        liveness_allow_replayable_prompts=True,
        liveness_prompts=2,
        liveness_prompt_seconds=10,
    )
    yield opened
    opened.stop()


@pytest.fixture(scope="module")
def http(door: Door) -> Iterator[httpx.Client]:
    with door.client() as client:
        yield client


@pytest.fixture(scope="module")
def grpc_stub(door: Door) -> Iterator[pb_grpc.FaceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{door.server.port}") as channel:
        yield pb_grpc.FaceServiceStub(channel)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reason_of(body: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The ErrorInfo of a google.rpc.Status in JSON."""
    (info,) = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info["domain"] == "facesvc"
    return info["reason"], info.get("metadata", {})


# ---- the original design's README, run as written ----------------------------------------


def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """`curl` as the README runs it; the status code and the JSON body."""
    assert shutil.which("curl"), "curl is needed"
    done = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60, check=True
    )
    body, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(body)


def test_the_original_designs_readme_requests_get_its_documented_shapes(
    process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    server = spawn_server(process, FACESVC_HTTP_PORT="-1")
    entries = list(log_lines(server, "serving", time.monotonic() + 120))
    assert entries and entries[-1]["message"] == "serving", f"server exited with {server.wait()}"
    base = f"http://localhost:{entries[-1]['http_port']}"

    code, health = curl(f"{base}/health")
    assert code == 200 and health["status"] == "healthy" and health["service"]
    assert TIMESTAMP.fullmatch(health["timestamp"])

    # curl -X POST "http://localhost:8000/enroll" -F "image=@person_face.jpg"
    code, enrolled = curl("-X", "POST", f"{base}/enroll", "-F", f"image=@{CELEBS / 'img1.jpg'}")
    assert code == 200, enrolled
    assert enrolled["success"] is True and enrolled["face_detected"] is True
    assert enrolled["message"] and TIMESTAMP.fullmatch(enrolled["timestamp"])
    assert len(enrolled["embedding"]) == 128 and all(isinstance(v, float) for v in enrolled["embedding"])
    assert 30 <= enrolled["quality_score"] <= 100

    # curl -X POST ".../verify" -F "image=@live_face.jpg" -F 'stored_embedding=[0.123,...]'
    stored = json.dumps(enrolled["embedding"])
    same = CELEBS / "img2.jpg"  # the same person as img1 (IDENTITIES.tsv)
    other = CELEBS / "img3.jpg"
    code, match = curl(
        "-X", "POST", f"{base}/verify", "-F", f"image=@{same}", "-F", f"stored_embedding={stored}"
    )
    assert code == 200, match
    assert match["success"] is True and match["match"] is True, match
    assert 50 <= match["confidence"] <= 100
    assert 0 <= match["similarity_score"] <= match["threshold_used"]  # a distance: lower is closer
    assert match["message"] and TIMESTAMP.fullmatch(match["timestamp"])
    code, no_match = curl(
        "-X", "POST", f"{base}/verify", "-F", f"image=@{other}", "-F", f"stored_embedding={stored}"
    )
    assert code == 200 and no_match["success"] is True and no_match["match"] is False, no_match
    assert no_match["confidence"] < 50 and no_match["similarity_score"] > no_match["threshold_used"]

    # No face: 200 with success false; several faces, low quality: 400.
    (tmp_path / "no_face.jpg").write_bytes(NO_FACE_IMAGE)
    code, no_face = curl("-X", "POST", f"{base}/enroll", "-F", f"image=@{tmp_path / 'no_face.jpg'}")
    assert code == 200 and no_face["success"] is False and no_face["face_detected"] is False
    assert no_face["embedding"] is None and no_face["message"] and no_face["reason"] == "NO_FACE"
    code, no_face = curl(
        "-X",
        "POST",
        f"{base}/verify",
        "-F",
        f"image=@{tmp_path / 'no_face.jpg'}",
        "-F",
        f"stored_embedding={stored}",
    )
    assert code == 200 and no_face["success"] is False and no_face["match"] is False
    assert no_face["confidence"] == 0.0 and no_face["threshold_used"] == match["threshold_used"]
    code, several = curl("-X", "POST", f"{base}/enroll", "-F", f"image=@{CELEBS / 'couple.jpg'}")
    assert code == 400 and several["success"] is False and several["reason"] == "MULTIPLE_FACES"
    assert several["message"] and TIMESTAMP.fullmatch(several["timestamp"])
    (tmp_path / "blurred.jpg").write_bytes(LOW_QUALITY_IMAGE)
    code, low = curl("-X", "POST", f"{base}/enroll", "-F", f"image=@{tmp_path / 'blurred.jpg'}")
    assert code == 400 and low["success"] is False and low["reason"] == "LOW_QUALITY"

    # /identify in the same style: the gallery as a JSON object of embeddings.
    gallery = json.dumps({"img1": enrolled["embedding"], "stranger": [0.1] * 128})
    code, found = curl("-X", "POST", f"{base}/identify", "-F", f"image=@{same}", "-F", f"gallery={gallery}")
    assert code == 200 and found["success"] and found["match"] and found["identity"] == "img1", found
    assert found["matches"][0]["id"] == "img1"


def test_a_bad_stored_embedding_and_a_bad_image_are_refused_with_their_reasons(http: httpx.Client) -> None:
    response = http.post("/verify", files={"image": photo("img1.jpg")}, data={"stored_embedding": "[1, 2,"})
    assert response.status_code == 400 and response.json()["reason"] == "EMBEDDING_INVALID"
    response = http.post("/verify", files={"image": photo("img1.jpg")}, data={"stored_embedding": "[1, 2]"})
    assert response.status_code == 400 and response.json()["reason"] == "EMBEDDING_INVALID"
    response = http.post("/enroll", files={"image": b"not an image"})
    assert response.status_code == 400 and response.json()["reason"] == "IMAGE_UNDECODABLE"
    response = http.post("/enroll", content=b"plain text", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400 and response.json()["reason"] == "REQUEST_INVALID"


# ---- every RPC as JSON --------------------------------------------------------------------


def test_every_rpc_has_a_route_from_the_contract_and_the_openapi_document_lists_it(
    http: httpx.Client,
) -> None:
    table = {route.method: (route.verb, route.path) for route in routes()}
    assert set(table) == {m.name for m in pb.DESCRIPTOR.services_by_name["FaceService"].methods}
    assert table["Enroll"] == ("POST", "/v1/faces:enroll") and table["Health"] == ("GET", "/v1/health")
    document = http.get("/openapi.json").json()
    for verb, path in table.values():
        assert verb.lower() in document["paths"][path]
    assert (
        document["components"]["schemas"]["facesvc.v1.EnrollRequest"]["properties"]["image"]["format"]
        == "byte"
    )
    for page in ("/docs", "/kiosk"):
        html = http.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        # Offline: nothing loaded from another origin.
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html.text), page


def test_enroll_verify_identify_health_and_reseal_as_json(http: httpx.Client) -> None:
    enrolled = http.post("/v1/faces:enroll", json={"image": b64(photo("img1.jpg"))})
    assert enrolled.status_code == 200 and enrolled.headers["x-request-id"]
    body = enrolled.json()
    embedding = body["embedding"]
    assert len(embedding["values"]) == 128 and embedding["model"] == "SFace"
    assert body["quality"]["score"] >= 30 and body["face"]["faceCount"] == 1

    verified = http.post(
        "/v1/faces:verify", json={"image": b64(photo("img2.jpg")), "storedEmbeddings": [embedding]}
    ).json()
    assert verified["match"] is True and verified["distance"] <= verified["threshold"]
    other = http.post(
        "/v1/faces:verify", json={"image": b64(photo("img3.jpg")), "stored_embeddings": [embedding]}
    ).json()  # the proto field name works as well as the lowerCamelCase one
    assert other["match"] is False

    identified = http.post(
        "/v1/faces:identify",
        json={
            "image": b64(photo("img2.jpg")),
            "candidates": [
                {"id": "me", "embedding": embedding},
                {"id": "x", "embedding": {**embedding, "values": [0.1] * 128}},
            ],
            "topK": 1,
        },
    ).json()
    assert [m["id"] for m in identified["matches"]] == ["me"] and identified["matches"][0]["match"]
    # A packed gallery of float16 rows, as JSON: base64 bytes and the enum by name.
    rows = np.array([embedding["values"], [0.1] * 128], dtype="<f2")
    packed = http.post(
        "/v1/faces:identify",
        json={
            "image": b64(photo("img2.jpg")),
            "packedCandidates": {
                "ids": ["me", "x"],
                "values": b64(rows.tobytes()),
                "model": "SFace",
                "encoding": "PACKED_ENCODING_FLOAT16",
            },
            "moreImages": [b64(photo("img2.jpg"))],
        },
    ).json()
    assert packed["matches"][0]["id"] == "me" and packed["frames"] == 2
    assert packed["matches"][0]["distance"] == pytest.approx(identified["matches"][0]["distance"], abs=2e-4)

    health = http.get("/v1/health").json()
    assert health["status"] == "SERVING_STATUS_SERVING" and health["embeddingDim"] == 128

    resealed = http.post("/v1/templates:reseal", json={"templates": [embedding]})
    assert resealed.status_code == 400  # FAILED_PRECONDITION: no key ring on this server
    assert reason_of(resealed.json())[0] == "SEALING_UNAVAILABLE"


@pytest.mark.parametrize(
    ("image", "code", "reason"),
    [
        (lambda: NO_FACE_IMAGE, 400, "NO_FACE"),
        (lambda: photo("couple.jpg"), 400, "MULTIPLE_FACES"),
        (lambda: b"\x89PNG not really", 400, "IMAGE_UNDECODABLE"),
        (lambda: LOW_QUALITY_IMAGE, 400, "LOW_QUALITY"),
    ],
    ids=["no-face", "multiple-faces", "bad-image", "low-quality"],
)
def test_refusals_carry_the_same_reason_as_over_grpc(
    http: httpx.Client, grpc_stub: pb_grpc.FaceServiceStub, image: Any, code: int, reason: str
) -> None:
    data = image()
    response = http.post("/v1/faces:enroll", json={"image": b64(data)})
    assert response.status_code == code
    body = response.json()
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0] and body["message"]
    http_reason, http_metadata = reason_of(body)
    with pytest.raises(grpc.RpcError) as refused:
        grpc_stub.Enroll(pb.EnrollRequest(image=data), timeout=30)
    grpc_code, grpc_reason, grpc_metadata = rejection(refused.value)
    assert (http_reason, grpc_code) == (reason, grpc.StatusCode.INVALID_ARGUMENT)
    assert grpc_reason == reason and http_metadata == grpc_metadata


def test_a_body_that_is_not_the_message_and_one_over_the_limit_are_refused(
    door: Door, http: httpx.Client
) -> None:
    response = http.post("/v1/faces:enroll", content=b'{"image": 5}')
    assert response.status_code == 400 and reason_of(response.json())[0] == "REQUEST_INVALID"
    response = http.post("/v1/faces:enroll", content=b'{"nonsense": true}')
    assert response.status_code == 400 and reason_of(response.json())[0] == "REQUEST_INVALID"
    too_large = door.settings.max_message_bytes + 1
    response = http.post("/v1/faces:enroll", content=b"{" + b" " * too_large + b"}")
    assert response.status_code == 413 and "retry-after" not in response.headers  # not to be retried
    reason, metadata = reason_of(response.json())
    assert reason == "MESSAGE_TOO_LARGE" and int(metadata["size_bytes"]) > door.settings.max_message_bytes
    response = http.post("/enroll", files={"image": b"\xff" * too_large})
    assert response.status_code == 413 and response.json()["reason"] == "MESSAGE_TOO_LARGE"


def test_both_doors_share_the_concurrency_limit_and_the_metrics(
    door: Door, http: httpx.Client, grpc_stub: pb_grpc.FaceServiceStub
) -> None:
    assert door.server.servicer is not None
    guard = door.server.servicer.guard
    held = 0
    while guard._slots.acquire(blocking=False):  # every slot busy, as under load
        held += 1
    try:
        response = http.post("/v1/faces:enroll", json={"image": b64(photo("img1.jpg"))})
        assert response.status_code == 429 and reason_of(response.json())[0] == "OVERLOADED"
        assert response.headers["retry-after"] == "1"
        legacy = http.post("/enroll", files={"image": photo("img1.jpg")})
        assert legacy.status_code == 429 and legacy.json()["reason"] == "OVERLOADED"
        assert legacy.headers["retry-after"] == "1"
        with pytest.raises(grpc.RpcError) as refused:
            grpc_stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30)
        assert rejection(refused.value)[1] == "OVERLOADED"
    finally:
        for _ in range(held):
            guard._slots.release()
    metrics = httpx.get(f"http://127.0.0.1:{door.server.metrics_port}/metrics").text
    overloaded = re.search(
        r'facesvc_rejections_total\{grpc_method="Enroll",reason="OVERLOADED"\} (\S+)', metrics
    )
    assert overloaded and float(overloaded.group(1)) >= 3  # both doors counted


@pytest.fixture(scope="module")
def keyed(engine: FaceEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    folder = tmp_path_factory.mktemp("http-tls")
    ca, ca_key, ca_cert = certs.authority()
    cert, key = certs.write(folder, "server", certs.issue(ca_key, ca_cert, "localhost", server=True))
    (folder / "ca.crt").write_bytes(ca.cert)
    opened = Door(engine, api_keys=(KEY,), tls_cert_file=cert, tls_key_file=key)
    opened.ca = folder / "ca.crt"  # type: ignore[attr-defined]
    yield opened
    opened.stop()


def test_api_keys_and_tls_guard_the_http_door_as_they_guard_grpc(keyed: Door) -> None:
    assert keyed.url.startswith("https://")
    with keyed.client(verify=str(keyed.ca)) as client:  # type: ignore[attr-defined]
        refused = client.post("/v1/faces:enroll", json={"image": b64(photo("img1.jpg"))})
        assert refused.status_code == 401
        reason, metadata = reason_of(refused.json())
        assert (reason, metadata["key"]) == ("UNAUTHENTICATED", "missing")
        wrong = client.post("/enroll", files={"image": photo("img1.jpg")}, headers={"x-api-key": "wrong"})
        assert wrong.status_code == 401 and wrong.json()["reason"] == "UNAUTHENTICATED"
        for header in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
            ok = client.post("/v1/faces:enroll", json={"image": b64(photo("img1.jpg"))}, headers=header)
            assert ok.status_code == 200, ok.text
        assert client.get("/health").status_code == 200  # probes stay open, as grpc.health.v1 does
        assert client.get("/v1/health").status_code == 401
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as untrusting:
        untrusting.get(f"{keyed.url}/health")  # not our CA: the certificate is refused


# ---- the liveness session over a WebSocket -------------------------------------------------


def _clip(limit: int) -> tuple[list[bytes], float]:
    capture = cv2.VideoCapture(str(BLINK_CLIP))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(images.jpeg(frame, 85))
    capture.release()
    return frames, fps


def session(url: str, frames: list[tuple[bytes, float]], frame_rate: float) -> list[dict[str, Any]]:
    """One session: a start, then frames until the result (or a refusal)."""
    received: list[dict[str, Any]] = []
    with connect(url.replace("http", "ws", 1) + "/v1/liveness", max_size=None) as socket:
        socket.send(json.dumps({"start": {"frameRate": frame_rate}}))
        received.append(json.loads(socket.recv(timeout=30)))
        if "error" in received[-1]:
            return received
        for image, capture_time in frames:
            socket.send(json.dumps({"frame": {"image": b64(image), "captureTime": capture_time}}))
            received.append(json.loads(socket.recv(timeout=30)))
            if "result" in received[-1] or "error" in received[-1]:
                break
    return received


def test_a_liveness_session_over_the_websocket_passes_for_a_person_who_blinks(door: Door) -> None:
    pixels, fps = images.blinking_person(BLINK_CLIP, 200)
    frames = [images.jpeg(frame, 85) for frame in pixels]
    received = session(door.url, [(frames[i], i / fps) for i in range(len(frames))], fps)
    started = received[0]["started"]
    assert started["sessionId"] and started["prompt"]["challenge"] == "LIVENESS_CHALLENGE_BLINK"
    assert all("feedback" in m for m in received[1:-1])
    result = received[-1]["result"]
    assert result["outcome"] == "LIVENESS_OUTCOME_PASSED", result
    assert result["promptsMet"] == 2 and len(result["embedding"]["values"]) == 128


def test_a_still_photo_fails_and_a_broken_stream_is_refused_over_the_websocket(door: Door) -> None:
    frames, _ = _clip(6)
    received = session(door.url, [(frames[5], n / 15) for n in range(30)], 15)
    result = received[-1]["result"]
    assert (
        result["outcome"] == "LIVENESS_OUTCOME_FAILED" and result["failure"] == "LIVENESS_FAILURE_NO_MOTION"
    )
    # A frame before the start: the stream breaks the protocol.
    with connect(door.url.replace("http", "ws", 1) + "/v1/liveness") as socket:
        socket.send(json.dumps({"frame": {"image": b64(frames[0]), "captureTime": 1}}))
        refused = json.loads(socket.recv(timeout=30))
    assert reason_of(refused["error"])[0] == "LIVENESS_SESSION_INVALID"
    received = session(door.url, [], 500)  # a frame rate out of range
    assert reason_of(received[0]["error"])[0] == "LIVENESS_SESSION_INVALID"


def test_the_websocket_needs_the_api_key_too(keyed: Door) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(keyed.ca))  # type: ignore[attr-defined]
    url = keyed.url.replace("https", "wss", 1) + "/v1/liveness"
    with connect(url, ssl=context) as socket:
        refused = json.loads(socket.recv(timeout=30))
    assert reason_of(refused["error"])[0] == "UNAUTHENTICATED"
    with connect(f"{url}?access_token={KEY}", ssl=context) as socket:
        socket.send(json.dumps({"start": {"frameRate": 15}}))
        assert "started" in json.loads(socket.recv(timeout=30))
