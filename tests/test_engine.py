"""The engine without gRPC: decoding limits, face choice, quality gate, confidence mapping."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine, FaceSelection, Gallery
from facesvc.engine.matching import scores as matching
from facesvc.engine.pipeline.decode import read_header
from facesvc.errors import EmbeddingInvalidError, ImageTooLargeError, MultipleFacesError
from tests import images
from tests.conftest import CELEBS, YALE, identities, photo


def test_header_bomb_is_refused_before_decoding() -> None:
    """50,000 x 50,000 RGB would be 7.5 GB of pixels; the header alone decides, in
    microseconds (the bound is loose on purpose: this proves no decoding, not speed)."""
    bomb = images.png_header_only(50_000, 50_000)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with pytest.raises(ImageTooLargeError):
            read_header(bomb, min_size=150, max_size=4096)
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[2] < 0.05


@pytest.mark.parametrize("name", ["img40.jpg", "img41.jpg", "img54.jpg", "img59.jpg", "img62.jpg"])
def test_background_faces_are_tolerated(name: str) -> None:
    # img40.jpg is 4600 px tall: above the default MAX_IMAGE_SIZE, so allow it here.
    engine = FaceEngine(Settings(max_image_size=5000))
    engine.load()
    face = engine.analyse(photo(name), FaceSelection.REJECT_MULTIPLE)
    assert face.quality.score >= 30


def test_two_people_side_by_side_are_refused(engine: FaceEngine) -> None:
    with pytest.raises(MultipleFacesError) as caught:
        engine.analyse(photo("couple.jpg"), FaceSelection.REJECT_MULTIPLE)
    assert caught.value.metadata["face_count"] == "2"


def test_central_and_largest_pick_different_faces_in_a_crowd() -> None:
    # The largest face of this selfie runs off the frame's edge, which the geometry
    # liveness check refuses; this test is about the choice, so liveness is off.
    engine = FaceEngine(Settings(liveness_checks=False))
    engine.load()
    largest = engine.analyse(photo("selfie-many-people.jpg"), FaceSelection.LARGEST).detection.box
    central = engine.analyse(photo("selfie-many-people.jpg"), FaceSelection.CENTRAL).detection.box
    assert largest.area >= central.area
    centre = 300
    assert central != largest
    assert abs(central.centre.x - centre) < abs(largest.centre.x - centre)


def test_default_quality_gate_accepts_ordinary_photos(engine: FaceEngine) -> None:
    """Every labelled celebs photo (within MAX_IMAGE_SIZE) and Yale's ordinary conditions."""
    lenient_size = FaceEngine(Settings(max_image_size=5000))
    lenient_size.load()
    for name in identities(CELEBS):
        assert lenient_size.analyse(photo(name)).quality.score >= 30, name
    conditions = ("normal", "happy", "glasses", "noglasses", "centerlight")
    yale = [n for n in identities(YALE) if n.split(".")[1] in conditions]
    assert len(yale) == 74
    for name in yale:
        assert engine.analyse((YALE / name).read_bytes()).quality.score >= 30, name


def test_large_photo_is_decoded_at_reduced_scale_with_the_same_embedding(engine: FaceEngine) -> None:
    full = engine.analyse(photo("img31.jpg"))  # 2500 px wide, decoded at 1/2 scale
    frame = engine.analyse(images.shrunk("img31.jpg", 640))
    distance = matching.distances(full.embedding, frame.embedding[None, :], "cosine")[0]
    assert distance < 0.15
    # Coordinates are reported in the original's pixels, whatever the decoding scale.
    assert full.detection.box.width == pytest.approx(frame.detection.box.width * 2500 / 640, rel=0.1)


def test_confidence_is_monotone_and_crosses_50_at_the_threshold() -> None:
    threshold = 0.55
    distances = np.linspace(0, 2, 2001)
    values = [matching.confidence(float(d), threshold) for d in distances]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert matching.confidence(threshold, threshold) == 50
    assert matching.confidence(0.0, threshold) == 100
    for d, c in zip(distances, values, strict=True):
        assert (np.float32(c) >= 50) == (d <= threshold)
    assert matching.confidence(np.nextafter(threshold, 1), threshold) < 50


def test_dlib_model_offline() -> None:
    """The second offline pipeline: dlib's ResNet with dlib's detector (HOG, CNN fallback)."""
    engine = FaceEngine(Settings(model="Dlib", detector="dlib"))
    engine.load()
    assert engine.info().distance_metric == "euclidean" and engine.info().embedding_dim == 128
    a = engine.analyse(photo("img1.jpg")).embedding
    same = engine.analyse(photo("img2.jpg")).embedding
    other = engine.analyse(photo("img17.jpg")).embedding
    assert matching.distances(a, same[None, :], "euclidean")[0] < 0.6
    assert matching.distances(a, other[None, :], "euclidean")[0] > 0.6
    # Threads at once: dlib's detectors must not be shared (that corrupted the heap once).
    names = ["img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg"]
    alone = {n: engine.analyse(photo(n)).embedding for n in names}
    with ThreadPoolExecutor(4) as pool:
        together = dict(
            zip(names * 2, pool.map(lambda n: engine.analyse(photo(n)).embedding, names * 2), strict=True)
        )
    for name in names:
        assert np.allclose(alone[name], together[name], atol=1e-5), name


def test_mtcnn_detector_offline() -> None:
    """MTCNN's weights ship inside the mtcnn wheel; DeepFace's class wraps it. It reports
    eyes only, so nose and mouth are placed from the eyes for alignment."""
    engine = FaceEngine(Settings(detector="mtcnn"))
    engine.load()
    a = engine.analyse(photo("img1.jpg"))
    assert a.detection.confidence > 0.9
    same = engine.analyse(photo("img2.jpg")).embedding
    other = engine.analyse(photo("img17.jpg")).embedding
    threshold = engine.info().threshold
    assert matching.distances(a.embedding, same[None, :], "cosine")[0] < threshold
    assert matching.distances(a.embedding, other[None, :], "cosine")[0] > threshold


@pytest.mark.parametrize("count", [1, 10, 100, 5000])
@pytest.mark.parametrize("wanted", [1, 3, 50])
def test_nearest_first_is_a_stable_argsort_read_lazily(count: int, wanted: int) -> None:
    rng = np.random.default_rng(count + wanted)
    dists = rng.integers(0, 40, count).astype(np.float32) / 40  # many ties
    expected = np.argsort(dists, kind="stable").tolist()
    assert list(matching.nearest_first(dists, wanted)) == expected
    assert list(itertools.islice(matching.nearest_first(dists, wanted), wanted)) == expected[:wanted]


def test_identify_ranks_past_duplicate_ids_beyond_the_closest_rows(engine: FaceEngine) -> None:
    """Hundreds of rows of one id closest to the probe: the next ids still come in order."""
    probe = engine.analyse(photo(CELEBS / "img1.jpg")).embedding
    rng = np.random.default_rng(11)
    strangers = rng.standard_normal((1000, probe.size)).astype(np.float32)
    copies = np.repeat(probe[None, :], 300, axis=0) + rng.normal(0, 1e-3, (300, probe.size)).astype(
        np.float32
    )
    matrix = np.vstack([copies, strangers])
    ids = ["me"] * 300 + [f"s{i}" for i in range(1000)]
    result = engine.identify(photo(CELEBS / "img1.jpg"), Gallery(ids, matrix, "SFace"), top_k=5)
    dists = matching.distances(probe, strangers, "cosine")
    assert [m.id for m in result.matches] == ["me"] + [f"s{i}" for i in np.argsort(dists, kind="stable")[:4]]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([np.nan] + [0.1] * 127, "NaN or infinite"),
        ([np.inf] + [0.1] * 127, "NaN or infinite"),
        ([0.1] * 127 + [-np.inf], "NaN or infinite"),
        ([0.0] * 64 + [-0.0] * 64, "all zeros"),
    ],
)
def test_gallery_rows_are_validated(engine: FaceEngine, row: list[float], reason: str) -> None:
    matrix = np.random.default_rng(1).standard_normal((20, 128)).astype(np.float32)
    matrix[13] = row
    with pytest.raises(EmbeddingInvalidError, match=reason) as raised:
        engine.identify(photo(CELEBS / "img1.jpg"), Gallery([f"r{i}" for i in range(20)], matrix, "SFace"))
    assert raised.value.metadata["index"] == "13"
