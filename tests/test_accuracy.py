"""Accuracy through the API: the calibrated operating points, LFW's development set at the
default, the fused model, and photos straight from a phone (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import grpc
import numpy as np
import pytest

from facesvc.config import Settings
from facesvc.engine.matching import open_set
from facesvc.tools import evaluate
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests import images
from tests.conftest import CELEBS, ROOT, YALE, rejection

LFW = ROOT.parent / "shared" / "lfw-devtrain"
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def reject(call, request):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=60)
    return rejection(caught.value)


@pytest.fixture(scope="module")
def importer() -> Iterator[pb_grpc.FaceServiceStub]:
    """A server configured as an archive importer: CENTRAL face selection, 64 px faces."""
    with evaluate.serving(Settings(**evaluate.IMPORTER)) as stub:
        yield stub


@pytest.fixture(scope="module")
def fused() -> Iterator[pb_grpc.FaceServiceStub]:
    with evaluate.serving(Settings(model="SFace+Dlib")) as stub:
        yield stub


# ---- the operating points -------------------------------------------------------------


def test_health_publishes_the_operating_points(stub: pb_grpc.FaceServiceStub) -> None:
    health = stub.Health(pb.HealthRequest(), timeout=30)
    points = list(health.operating_points)
    assert [p.far for p in points] == pytest.approx([0.01, 0.001, 0.0001], rel=0.05)
    thresholds = [p.threshold for p in points]
    assert thresholds == sorted(thresholds, reverse=True)
    assert [p.frr for p in points] == sorted(p.frr for p in points)
    assert all(0 < p.frr < 0.1 for p in points)
    default = next(p for p in points if p.threshold == health.threshold)
    assert default.far == pytest.approx(0.001, rel=0.05) and health.default_far == pytest.approx(0.001)


def test_a_request_names_an_operating_point(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    points = stub.Health(pb.HealthRequest(), timeout=30).operating_points
    request = pb.VerifyRequest(image=photo_bytes("img1.jpg"), stored_embeddings=[enrolled["img2.jpg"]])
    for point in points:
        request.far = point.far
        verdict = stub.Verify(request, timeout=30)
        assert verdict.threshold == pytest.approx(point.threshold)
        assert verdict.match == (verdict.distance <= point.threshold)
    identify = pb.IdentifyRequest(
        image=photo_bytes("img1.jpg"),
        candidates=[pb.Candidate(id="a", embedding=enrolled["img2.jpg"])],
        far=0.01,
    )
    assert stub.Identify(identify, timeout=30).threshold == pytest.approx(points[0].threshold)
    request.far = 0.05  # not published
    code, reason, metadata = reject(stub.Verify, request)
    assert (code, reason) == (INVALID, "EMBEDDING_INVALID") and "0.001" in metadata["published"]
    request.far, request.threshold = 0.001, 0.5  # both
    assert reject(stub.Verify, request)[:2] == (INVALID, "EMBEDDING_INVALID")


def photo_bytes(name: str) -> bytes:
    return (CELEBS / name).read_bytes()


# ---- rates over whole sets at the default ------------------------------------------------


def test_lfw_development_pairs_at_the_default(importer: pb_grpc.FaceServiceStub) -> None:
    """A quarter of lfw-devtrain's pairs (every fourth, 550) through the API with an
    importer's settings; FAR over every impostor pair of their photos."""
    pairs = evaluate.pairs_of(LFW)[::4]
    names = sorted({name for a, b, _ in pairs for name in (a, b)})
    embedded = evaluate.embed_set(importer, LFW, only=set(names))
    distances, same = evaluate.pair_distances(embedded, LFW, pairs)
    result = evaluate.score_pairs(distances, same, embedded.threshold)
    genuine, impostors = evaluate.all_pairs(embedded)
    far = float((impostors <= embedded.threshold).mean())
    # Measured: 1,061 photos, 1 refused; 99.27% of the 550 pairs; FAR 0.095% over 560,933
    # impostor pairs, FRR 0.89% over the genuine ones (the whole set: `make eval`).
    assert sum(embedded.refused.values()) <= 3, embedded.refused
    assert result.accuracy >= 0.985, result
    assert far <= 0.002, far
    assert float((genuine > embedded.threshold).mean()) <= 0.03


#: lfw-devtrain photos the plausible_geometry rule refused while its eye-distance floor
#: (25% of the box width) stood: heads turned away from the camera, 15-24%.
TURNED_HEADS = [
    "Allan_Houston/Allan_Houston_0001.jpg",
    "Franz_Muentefering/Franz_Muentefering_0003.jpg",
    "George_Clooney/George_Clooney_0002.jpg",
    "Hernan_Diaz/Hernan_Diaz_0001.jpg",
    "Ken_Watanabe/Ken_Watanabe_0001.jpg",
    "Maria_Soledad_Alvear_Valenzuela/Maria_Soledad_Alvear_Valenzuela_0001.jpg",
    "Peter_Mugyeni/Peter_Mugyeni_0001.jpg",
    "Xanana_Gusmao/Xanana_Gusmao_0002.jpg",
]


def test_turned_heads_pass_the_geometry_check(importer: pb_grpc.FaceServiceStub) -> None:
    ratios, too_small = [], 0
    for name in TURNED_HEADS:
        try:
            response = importer.Enroll(pb.EnrollRequest(image=(LFW / "lfw" / name).read_bytes()), timeout=60)
        except grpc.RpcError as error:
            # One of them (a 55 px face at 2x detection) is under the importer's 64 px floor.
            assert rejection(error)[1] == "FACE_TOO_SMALL"
            too_small += 1
            continue
        (geometry,) = [c for c in response.liveness_checks if c.name == "plausible_geometry"]
        assert geometry.passed and geometry.threshold == pytest.approx(0.75)
        ratios.append(geometry.value)
    assert too_small <= 1 and min(ratios) < 0.25  # what the old floor refused


def test_yale_at_the_default(stub: pb_grpc.FaceServiceStub) -> None:
    embedded = evaluate.embed_set(stub, YALE)
    distances, same = evaluate.pair_distances(embedded, YALE)
    result = evaluate.score_pairs(distances, same, embedded.threshold)
    # Measured: 100% at the old 0.55, 99.94% (1 false accept of 815) at 0.634.
    assert result.accuracy >= 0.995 and result.false_accepts <= 2, result


# ---- phone photos and bombs -------------------------------------------------------------


def test_a_24_megapixel_phone_photo_is_accepted(stub: pb_grpc.FaceServiceStub) -> None:
    pixels = images.load("img4.jpg")
    height, width = pixels.shape[:2]
    left = (width - round(height * 4 / 3)) // 2
    phone = cv2.resize(
        pixels[:, left : left + round(height * 4 / 3)], (5712, 4284), interpolation=cv2.INTER_CUBIC
    )
    small = stub.Enroll(pb.EnrollRequest(image=photo_bytes("img4.jpg")), timeout=30)
    big = stub.Enroll(pb.EnrollRequest(image=images.jpeg(phone)), timeout=60)
    assert big.face.box.width > 2 * small.face.box.width  # in the phone photo's own pixels
    verdict = stub.Verify(
        pb.VerifyRequest(image=images.jpeg(phone), stored_embeddings=[small.embedding]), timeout=60
    )
    assert verdict.match and verdict.distance < 0.2


@pytest.mark.parametrize(
    ("width", "height", "limit"),
    [(8000, 8000, "max_image_pixels"), (9000, 200, "max_image_size"), (50_000, 50_000, "max_image_size")],
)
def test_bombs_are_refused_from_the_header(
    stub: pb_grpc.FaceServiceStub, width: int, height: int, limit: str
) -> None:
    code, reason, metadata = reject(
        stub.Enroll, pb.EnrollRequest(image=images.png_header_only(width, height))
    )
    assert (code, reason) == (INVALID, "IMAGE_TOO_LARGE") and limit in metadata


# ---- the fused model ---------------------------------------------------------------------


def test_the_fused_model_has_its_own_open_set_rule(fused: pb_grpc.FaceServiceStub) -> None:
    """SFace+Dlib is calibrated too (its own row in open_set_table.json): Health publishes
    it and Identify's threshold follows the gallery's identities under it."""
    health = fused.Health(pb.HealthRequest(), timeout=30)
    table = open_set.table_for("SFace+Dlib")
    assert table is not None and health.open_set.default_fpir == pytest.approx(0.01)
    assert [list(row.thresholds) for row in health.open_set.thresholds] == [
        pytest.approx(p.thresholds) for p in table.points
    ]
    names = ["img1.jpg", "img17.jpg", "img5.jpg"]
    gallery = [
        pb.Candidate(
            id=name, embedding=fused.Enroll(pb.EnrollRequest(image=photo_bytes(name)), timeout=60).embedding
        )
        for name in names
    ]
    response = fused.Identify(
        pb.IdentifyRequest(image=photo_bytes("img1.jpg"), candidates=gallery), timeout=60
    )
    assert response.fpir == pytest.approx(0.01) and response.gallery_identities == 3
    assert response.threshold == pytest.approx(min(table.threshold_for(3, 0.01), health.threshold), abs=1e-6)
    assert response.matches[0].id == "img1.jpg" and response.matches[0].match


def test_fused_embeddings_carry_their_own_tag(
    fused: pb_grpc.FaceServiceStub, stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    health = fused.Health(pb.HealthRequest(), timeout=30)
    assert (health.model, health.embedding_dim, health.distance_metric) == ("SFace+Dlib", 256, "cosine")
    assert len(health.operating_points) == 3 and health.default_far == pytest.approx(0.001)
    response = fused.Enroll(pb.EnrollRequest(image=photo_bytes("img1.jpg")), timeout=60)
    values = np.array(response.embedding.values)
    assert response.embedding.model == "SFace+Dlib" and values.shape == (256,)
    assert np.linalg.norm(values) == pytest.approx(1.0, abs=1e-4)
    # Never compared with plain SFace ones, either way round.
    sface = enrolled["img2.jpg"]
    code, reason, _ = reject(
        fused.Verify, pb.VerifyRequest(image=photo_bytes("img2.jpg"), stored_embeddings=[sface])
    )
    assert (code, reason) == (INVALID, "EMBEDDING_MODEL_MISMATCH")
    code, reason, _ = reject(
        stub.Verify, pb.VerifyRequest(image=photo_bytes("img2.jpg"), stored_embeddings=[response.embedding])
    )
    assert (code, reason) == (INVALID, "EMBEDDING_MODEL_MISMATCH")


def test_fused_model_on_celebs(fused: pb_grpc.FaceServiceStub) -> None:
    embedded = evaluate.embed_set(fused, CELEBS)
    distances, same = evaluate.pair_distances(embedded, CELEBS)
    result = evaluate.score_pairs(distances, same, embedded.threshold)
    assert not embedded.refused, embedded.refused
    # Measured: 99.62%, 2 false accepts of 380 (docs/MODELS.md).
    assert result.accuracy >= 0.99 and result.false_accepts <= 3, result
