"""FaceService end to end: a real server on an ephemeral port, real photos, real models."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests import images
from tests.conftest import CELEBS, ORL, identities, pairs, photo, rejection

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def reject(call, request):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return rejection(caught.value)


# ---- Enroll ---------------------------------------------------------------------


def test_enroll_returns_embedding_quality_face_and_liveness(stub: pb_grpc.FaceServiceStub) -> None:
    response = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30)
    embedding = np.array(response.embedding.values)
    assert response.embedding.model == "SFace"
    assert embedding.shape == (128,) and np.all(np.isfinite(embedding)) and np.linalg.norm(embedding) > 0
    quality = response.quality
    assert 30 <= quality.score <= 100
    for part in (quality.sharpness, quality.brightness, quality.face_size):
        assert 0 <= part <= 100
    # img1.jpg is 1382x1868 with the face in the upper middle: the box is in original pixels.
    box = response.face.box
    assert 300 < box.x < 800 and 100 < box.y < 600 and 400 < box.width < 900
    marks = response.face.landmarks
    assert box.x < marks.left_eye.x < marks.right_eye.x < box.x + box.width
    assert marks.left_eye.y < marks.nose.y < marks.mouth_left.y
    assert response.face.face_count == 1 and response.face.confidence > 0.8
    names = [check.name for check in response.liveness_checks]
    assert names == [
        "sharpness",
        "illumination",
        "face_size",
        "plausible_geometry",
        "presentation_attack",
        "presentation_attack.minifasnet",  # each fused signal's value, after the verdict
        "presentation_attack.spectral_peaks",
    ]
    # The verdict and the basic checks pass; a single signal may lean either way.
    assert all(check.passed for check in response.liveness_checks[:5])


@pytest.mark.parametrize("extension", [".png", ".bmp", ".webp"])
def test_enroll_accepts_every_supported_format(stub: pb_grpc.FaceServiceStub, extension: str) -> None:
    reference = np.array(stub.Enroll(pb.EnrollRequest(image=photo("img11.jpg")), timeout=30).embedding.values)
    data = images.encode(images.load("img11.jpg"), extension)
    embedding = np.array(stub.Enroll(pb.EnrollRequest(image=data), timeout=30).embedding.values)
    cosine = embedding @ reference / (np.linalg.norm(embedding) * np.linalg.norm(reference))
    assert cosine > 0.95


def test_exif_orientation_is_honoured(stub: pb_grpc.FaceServiceStub) -> None:
    upright = stub.Enroll(pb.EnrollRequest(image=photo("img2.jpg")), timeout=30)
    sideways = images.exif_rotated("img2.jpg")
    verdict = stub.Verify(pb.VerifyRequest(image=sideways, stored_embeddings=[upright.embedding]), timeout=30)
    assert verdict.match and verdict.distance < 0.2
    # The box is reported in the upright image: same place as for the upright file.
    assert abs(verdict.face.box.x - upright.face.box.x) < 40
    assert abs(verdict.face.box.y - upright.face.box.y) < 40


# ---- Rejections: each reason from a real input ----------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", photo("img1.jpg")[:2000], b"GIF89a" + b"\0" * 100],
    ids=["empty", "text", "truncated-jpeg", "gif-header"],
)
def test_undecodable(stub: pb_grpc.FaceServiceStub, data: bytes) -> None:
    code, reason, _ = reject(stub.Enroll, pb.EnrollRequest(image=data))
    assert (code, reason) == (INVALID, "IMAGE_UNDECODABLE")


def test_orl_photo_is_too_small(stub: pb_grpc.FaceServiceStub) -> None:
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=(ORL / "s1" / "1.png").read_bytes()))
    assert (code, reason) == (INVALID, "IMAGE_TOO_SMALL")
    assert metadata["width"] == "92" and metadata["height"] == "112"


def test_decompression_bomb_is_refused_from_its_header(stub: pb_grpc.FaceServiceStub) -> None:
    code, reason, metadata = reject(
        stub.Enroll, pb.EnrollRequest(image=images.png_header_only(50_000, 50_000))
    )
    assert (code, reason) == (INVALID, "IMAGE_TOO_LARGE")
    assert metadata["width"] == "50000"


def test_no_face(stub: pb_grpc.FaceServiceStub) -> None:
    # The lower part of a real press photo: clothes and background, no face.
    body = images.jpeg(images.load("img1.jpg")[1300:, :])
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=body))
    assert (code, reason, metadata["face_count"]) == (INVALID, "NO_FACE", "0")


@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg"])
def test_multiple_faces_rejected(stub: pb_grpc.FaceServiceStub, name: str) -> None:
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=photo(name)))
    assert (code, reason) == (INVALID, "MULTIPLE_FACES")
    assert int(metadata["face_count"]) >= 2


@pytest.mark.parametrize("name", ["img41.jpg", "img54.jpg", "img59.jpg", "img62.jpg"])
def test_background_face_does_not_block_foreground_face(stub: pb_grpc.FaceServiceStub, name: str) -> None:
    response = stub.Enroll(pb.EnrollRequest(image=photo(name)), timeout=30)
    assert response.face.face_count >= 2  # the background face was seen, and tolerated


@pytest.mark.parametrize(
    "selection", [pb.FACE_SELECTION_LARGEST, pb.FACE_SELECTION_CENTRAL], ids=["largest", "central"]
)
def test_face_selection_takes_one_of_two_faces(stub: pb_grpc.FaceServiceStub, selection: int) -> None:
    response = stub.Enroll(pb.EnrollRequest(image=photo("couple.jpg"), face_selection=selection), timeout=30)
    assert response.face.face_count == 2 and len(response.embedding.values) == 128


def test_face_too_small(stub: pb_grpc.FaceServiceStub) -> None:
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=images.shrunk("img27.jpg", 400)))
    assert (code, reason) == (INVALID, "FACE_TOO_SMALL")
    assert int(metadata["face_size"]) < 80 and metadata["min_face_size"] == "80"


def test_low_quality(stub: pb_grpc.FaceServiceStub) -> None:
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=images.blurred("img1.jpg", 12, 0.12)))
    assert (code, reason) == (INVALID, "LOW_QUALITY")
    assert float(metadata["quality_score"]) < 30


@pytest.mark.parametrize(
    ("data", "check"),
    [
        (lambda: images.darkened("img1.jpg", 0.15), "illumination"),
        (lambda: images.blurred("img1.jpg", 40), "sharpness"),
    ],
    ids=["dark", "blurred"],
)
def test_liveness_failed(stub: pb_grpc.FaceServiceStub, data, check: str) -> None:  # type: ignore[no-untyped-def]
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=data()))
    assert (code, reason) == (INVALID, "LIVENESS_FAILED")
    assert check in metadata["failed_checks"].split(",")


def _embedding(values: list[float], model: str = "SFace") -> pb.Embedding:
    return pb.Embedding(values=values, model=model)


@pytest.mark.parametrize(
    "stored",
    [
        [],
        [_embedding([0.1] * 127)],
        [_embedding([0.1] * 127 + [math.nan])],
        [_embedding([0.1] * 127 + [math.inf])],
        [_embedding([0.0] * 128)],
    ],
    ids=["none", "wrong-length", "nan", "inf", "zeros"],
)
def test_embedding_invalid(stub: pb_grpc.FaceServiceStub, stored: list[pb.Embedding]) -> None:
    code, reason, _ = reject(stub.Verify, pb.VerifyRequest(image=photo("img1.jpg"), stored_embeddings=stored))
    assert (code, reason) == (INVALID, "EMBEDDING_INVALID")


def test_embedding_model_mismatch(stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]) -> None:
    foreign = _embedding([0.1] * 512, model="Facenet512")
    code, reason, metadata = reject(
        stub.Verify,
        pb.VerifyRequest(image=photo("img1.jpg"), stored_embeddings=[enrolled["img2.jpg"], foreign]),
    )
    assert (code, reason) == (INVALID, "EMBEDDING_MODEL_MISMATCH")
    assert metadata == {"index": "1", "embedding_model": "Facenet512", "serving_model": "SFace"}


def test_message_limit(stub: pb_grpc.FaceServiceStub) -> None:
    code, reason, metadata = reject(stub.Enroll, pb.EnrollRequest(image=b"\xff" * (11 * 1024 * 1024)))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE")
    assert metadata["max_message_bytes"] == str(10 * 1024 * 1024)


# ---- Verify -------------------------------------------------------------------------


def test_genuine_and_impostor_pairs(stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]) -> None:
    """Every pair of celebs/PAIRS.tsv: live photo A against the stored embedding of B.
    A rejected photo counts as an error."""
    outcomes = []
    for name_a, name_b, same in pairs(CELEBS):
        if name_b not in enrolled:
            outcomes.append((same, None))
            continue
        try:
            verdict = stub.Verify(
                pb.VerifyRequest(image=photo(name_a), stored_embeddings=[enrolled[name_b]]), timeout=30
            )
        except grpc.RpcError:
            outcomes.append((same, None))
            continue
        assert (verdict.confidence >= 50) == verdict.match
        assert verdict.match == (verdict.distance <= verdict.threshold)
        outcomes.append((same, verdict.match))
    correct = sum(1 for same, match in outcomes if match is not None and match == same)
    false_accepts = sum(1 for same, match in outcomes if not same and match)
    impostors = sum(1 for same, _ in outcomes if not same)
    accuracy = correct / len(outcomes)
    # Measured with SFace + YuNet at 0.634: 99.81% (see docs/MODELS.md); every photo is
    # accepted now that MAX_IMAGE_SIZE is 8192 px (img40 and img49 are 4352-4600 px).
    assert len(enrolled) == 61
    assert len(outcomes) == 520
    assert accuracy >= 0.99, f"accuracy {accuracy:.3f}"
    assert false_accepts / impostors <= 0.01, f"false accepts {false_accepts}/{impostors}"


def test_several_templates_the_best_decides(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    names = identities(CELEBS)
    impostor = next(n for n, who in names.items() if who != names["img1.jpg"] and n in enrolled)
    stored = [enrolled[impostor], enrolled["img2.jpg"]]
    verdict = stub.Verify(pb.VerifyRequest(image=photo("img1.jpg"), stored_embeddings=stored), timeout=30)
    assert verdict.match and verdict.best_template_index == 1
    assert verdict.model == "SFace" and verdict.quality.score >= 30 and verdict.face.face_count == 1


def test_threshold_override_and_confidence_mapping(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    request = pb.VerifyRequest(image=photo("img1.jpg"), stored_embeddings=[enrolled["img2.jpg"]])
    default = stub.Verify(request, timeout=30)
    assert default.match and default.confidence >= 50
    assert default.confidence == pytest.approx(100 - 50 * default.distance / default.threshold, abs=1e-3)
    request.threshold = default.distance / 2
    strict = stub.Verify(request, timeout=30)
    assert not strict.match and strict.confidence < 50
    assert strict.threshold == pytest.approx(default.distance / 2)
    assert strict.distance == pytest.approx(default.distance, abs=1e-6)
    request.threshold = -1
    assert reject(stub.Verify, request)[1] == "EMBEDDING_INVALID"


# ---- Identify --------------------------------------------------------------------------


def test_identify_ranks_the_true_identity_first(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    """Gallery: the first enrolled photo of each celebrity. Probes: every other photo."""
    names = identities(CELEBS)
    gallery: dict[str, str] = {}
    for name, who in names.items():
        if name in enrolled and who not in gallery:
            gallery[who] = name
    candidates = [pb.Candidate(id=who, embedding=enrolled[name]) for who, name in gallery.items()]
    probes = [n for n in enrolled if n not in gallery.values()]
    first = 0
    for probe in probes:
        response = stub.Identify(
            pb.IdentifyRequest(image=photo(probe), candidates=candidates, top_k=3), timeout=30
        )
        assert len(response.matches) == 3
        distances = [m.distance for m in response.matches]
        assert distances == sorted(distances)
        first += response.matches[0].id == names[probe]
    assert first / len(probes) >= 0.95, f"top-1 {first}/{len(probes)}"


def test_identify_one_entry_per_id(stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]) -> None:
    names = identities(CELEBS)
    same_person = [
        n for n, who in names.items() if who == names["img1.jpg"] and n in enrolled and n != "img1.jpg"
    ]
    others = [n for n, who in names.items() if who != names["img1.jpg"] and n in enrolled][:5]
    candidates = [pb.Candidate(id="me", embedding=enrolled[n]) for n in same_person]
    candidates += [pb.Candidate(id=f"other-{i}", embedding=enrolled[n]) for i, n in enumerate(others)]
    response = stub.Identify(
        pb.IdentifyRequest(image=photo("img1.jpg"), candidates=candidates, top_k=100), timeout=30
    )
    ids = [m.id for m in response.matches]
    assert ids[0] == "me" and len(ids) == len(set(ids)) == 1 + len(others)
    assert response.matches[0].match and response.matches[0].confidence >= 50
    assert not any(m.match for m in response.matches[1:])
    default_k = stub.Identify(pb.IdentifyRequest(image=photo("img1.jpg"), candidates=candidates), timeout=30)
    assert [m.id for m in default_k.matches] == ["me"]


def test_identify_rejects_bad_galleries(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    image = photo("img1.jpg")
    assert reject(stub.Identify, pb.IdentifyRequest(image=image))[1] == "EMBEDDING_INVALID"
    nameless = pb.Candidate(id="", embedding=enrolled["img2.jpg"])
    assert (
        reject(stub.Identify, pb.IdentifyRequest(image=image, candidates=[nameless]))[1]
        == "EMBEDDING_INVALID"
    )
    negative = pb.IdentifyRequest(
        image=image, candidates=[pb.Candidate(id="a", embedding=enrolled["img2.jpg"])], top_k=-1
    )
    assert reject(stub.Identify, negative)[1] == "EMBEDDING_INVALID"


# ---- Health ------------------------------------------------------------------------------


def test_health_rpc(stub: pb_grpc.FaceServiceStub, server: FaceServer) -> None:
    response = stub.Health(pb.HealthRequest(), timeout=5)
    assert response.status == pb.SERVING_STATUS_SERVING
    assert (response.model, response.embedding_dim, response.detector) == ("SFace", 128, "yunet")
    assert response.distance_metric == "cosine" and 0 < response.threshold < 1
    assert response.version and response.uptime_seconds >= 0
    assert response.default_face_selection == pb.FACE_SELECTION_REJECT_MULTIPLE


def test_identify_with_a_packed_gallery(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    """10,000 rows in one bytes field, plus a listed candidate: both are searched."""
    names = identities(CELEBS)
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((10_000, 128)).astype("<f4")
    ids = [f"stranger-{i}" for i in range(10_000)]
    genuine = [
        n for n, who in names.items() if who == names["img1.jpg"] and n in enrolled and n != "img1.jpg"
    ]
    noise[1234] = np.array(enrolled[genuine[0]].values, dtype="<f4")
    ids[1234] = "me"
    packed = pb.PackedGallery(ids=ids, values=noise.tobytes(), model="SFace")
    listed = [
        pb.Candidate(id="me", embedding=enrolled[genuine[1]]),
        pb.Candidate(id="other", embedding=enrolled["img17.jpg"]),
    ]
    request = pb.IdentifyRequest(
        image=photo("img1.jpg"), candidates=listed, packed_candidates=packed, top_k=2
    )
    response = stub.Identify(request, timeout=30)
    assert response.matches[0].id == "me" and response.matches[0].match
    assert response.matches[1].id != "me" and not response.matches[1].match

    truncated = pb.PackedGallery(ids=ids, values=noise.tobytes()[:-4], model="SFace")
    code, reason, _ = reject(
        stub.Identify, pb.IdentifyRequest(image=photo("img1.jpg"), packed_candidates=truncated)
    )
    assert (code, reason) == (INVALID, "EMBEDDING_INVALID")
    foreign = pb.PackedGallery(ids=ids, values=noise.tobytes(), model="Dlib")
    code, reason, _ = reject(
        stub.Identify, pb.IdentifyRequest(image=photo("img1.jpg"), packed_candidates=foreign)
    )
    assert (code, reason) == (INVALID, "EMBEDDING_MODEL_MISMATCH")
