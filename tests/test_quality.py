"""Quality that predicts recognition failure (issue 25, part 1), through a real server.

The unified score and its components on whole folders: every photo scored with every
component; Yale's genuine pairs of low quality are further apart than the rest (the
out-of-source check of the fit on lfw-devtrain); a floor, per request or in settings,
refuses exactly the photos below it and names the weakest component; the defaults refuse
nothing the original gate accepts; the eyes-open component falls when the eyes close
(Yale's sleepy and wink photos, the labelled webcam blinks).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import (
    CELEBS,
    FACES,
    YALE,
    identities,
    pairs,
    photo,
    rejection,
    start_server,
)
from tests.images import blink_runs, clip_frames, jpeg

BLINK_CLIPS = FACES.parent / "liveness" / "blink"

COMPONENTS = {
    "yaw",
    "pitch",
    "roll",
    "sharpness",
    "brightness",
    "saturation",
    "unevenness",
    "face_size",
    "detector_confidence",
    "embedding_norm",
    "eyes_open",
}
REASONS = {
    "OK",
    "EXTREME_YAW",
    "EXTREME_PITCH",
    "EXTREME_ROLL",
    "LOW_SHARPNESS",
    "TOO_DARK",
    "WASHED_OUT",
    "UNEVEN_LIGHTING",
    "SMALL_FACE",
    "LOW_DETECTOR_CONFIDENCE",
    "LOW_RECOGNIZABILITY",
    "EYES_CLOSED",
}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def yale(stub: pb_grpc.FaceServiceStub) -> dict[str, pb.EnrollResponse]:
    """Every Yale photo enrolled once with the defaults (all are accepted: asserted below)."""
    return {
        name: stub.Enroll(pb.EnrollRequest(image=(YALE / name).read_bytes()), timeout=60)
        for name in identities(YALE)
    }


def cosine(a: pb.Embedding, b: pb.Embedding) -> float:
    x, y = np.asarray(a.values), np.asarray(b.values)
    return float(1.0 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_every_photo_is_scored_with_every_component(
    yale: dict[str, pb.EnrollResponse], stub: pb_grpc.FaceServiceStub
) -> None:
    celebs = [stub.Enroll(pb.EnrollRequest(image=photo(name)), timeout=60) for name in identities(CELEBS)]
    responses = [*yale.values(), *celebs]
    assert len(responses) == len(identities(YALE)) + len(identities(CELEBS))  # the defaults refused none
    for response in responses:
        quality = response.quality
        assert 0.0 < quality.unified < 100.0
        assert {c.name for c in quality.components} == COMPONENTS
        assert {c.reason for c in quality.components} <= REASONS
        assert all(0.0 < c.score < 100.0 for c in quality.components)
        assert quality.score >= 30.0  # the original score keeps its meaning and gate
    # Press photos score higher than Yale's 1997 greyscale scans, on the whole.
    assert np.median([r.quality.unified for r in celebs]) > np.median(
        [r.quality.unified for r in yale.values()]
    )


def test_low_quality_pairs_are_the_ones_further_apart(yale: dict[str, pb.EnrollResponse]) -> None:
    """Out of source (nothing was fitted on Yale): the fifth of its 815 genuine pairs with the
    lowest pair quality (the lower of the two photos') lie further apart than the rest.
    Measured 0.289 against 0.210 (1.38x); no Yale pair fails at the default threshold, so
    the mean distance is the measurable sign. Floor: 1.2x."""
    genuine = [(a, b) for a, b, same in pairs(YALE) if same]
    quality = np.array([min(yale[a].quality.unified, yale[b].quality.unified) for a, b in genuine])
    distance = np.array([cosine(yale[a].embedding, yale[b].embedding) for a, b in genuine])
    low = quality <= np.percentile(quality, 20)
    assert distance[low].mean() >= 1.2 * distance[~low].mean()
    # Side lighting is what Yale's conditions vary most: those photos score lowest.
    by_condition = {
        c: np.median([r.quality.unified for n, r in yale.items() if f".{c}." in n])
        for c in ("leftlight", "rightlight", "normal", "happy")
    }
    assert max(by_condition["leftlight"], by_condition["rightlight"]) < min(
        by_condition["normal"], by_condition["happy"]
    )


def eyes_open(response: pb.EnrollResponse) -> float:
    return {c.name: c.value for c in response.quality.components}["eyes_open"]


def test_eyes_open_is_lower_for_lowered_and_winking_eyelids(yale: dict[str, pb.EnrollResponse]) -> None:
    """Out of source (its only fit, the fused weight and the EYES_CLOSED limit, is on
    lfw-devtrain): each Yale subject's sleepy (lids lowered) and wink photos read a lower
    eyes_open than the same subject's normal photo (measured 15 of 15 each; floor 13), and
    no photo of an open-eyed condition is said to have its eyes closed (measured: the lowest
    of 104 reads 0.177, against the limit 0.12)."""
    for condition in ("sleepy", "wink"):
        lower = sum(
            eyes_open(yale[f"subject{k:02d}.{condition}.png"]) < eyes_open(yale[f"subject{k:02d}.normal.png"])
            for k in range(1, 16)
        )
        assert lower >= 13, condition
    open_eyed = ("normal", "noglasses", "glasses", "centerlight", "leftlight", "rightlight", "surprised")
    flagged = [
        n
        for n, r in yale.items()
        if n.split(".")[1] in open_eyed
        and {c.name: c.reason for c in r.quality.components}["eyes_open"] == "EYES_CLOSED"
    ]
    assert flagged == []


def test_eyes_open_falls_in_a_labelled_blink(stub: pb_grpc.FaceServiceStub) -> None:
    """Every labelled blink of the nine webcam clips: its middle frame against the open frame
    five before it, both enrolled (a frame too dim for the basic checks drops its blink: one
    of 92). Measured: the closed frame reads lower in 72 of 91 blinks: 54 of 57 for the
    person with glasses, only 18 of 34 for the other, whose lids the mesh barely sees close
    (docs/QUALITY.md). Floors: 70% overall, 90% for the first person."""
    lower: dict[str, list[bool]] = {}
    for clip in sorted(BLINK_CLIPS.glob("*.avi")):
        runs = blink_runs(clip)
        closed_frames = {i for s, e in runs for i in range(s, e)}
        wanted = {
            i for s, e in runs if s >= 5 and s - 5 not in closed_frames for i in (s - 5, (s + e - 1) // 2)
        }
        frames = {i: jpeg(frame) for i, frame in clip_frames(clip, wanted)[0].items()}
        for s, e in runs:
            middle, before = (s + e - 1) // 2, s - 5
            if before in frames and middle in frames:
                try:
                    closed, opened = (
                        eyes_open(stub.Enroll(pb.EnrollRequest(image=frames[i]), timeout=60))
                        for i in (middle, before)
                    )
                except grpc.RpcError as refused:  # a dim frame the basic checks refuse
                    assert rejection(refused)[1] == "LIVENESS_FAILED"
                    continue
                lower.setdefault(clip.stem.split("_")[0], []).append(closed < opened)
    every = [x for values in lower.values() for x in values]
    assert len(every) >= 80
    assert np.mean(every) >= 0.70
    assert np.mean(lower["mahie"]) >= 0.90


def test_an_enroll_floor_refuses_exactly_the_photos_below_it(
    yale: dict[str, pb.EnrollResponse], stub: pb_grpc.FaceServiceStub
) -> None:
    floor = float(np.median([r.quality.unified for r in yale.values()]))
    refused = 0
    for name, first in yale.items():
        request = pb.EnrollRequest(image=(YALE / name).read_bytes(), min_quality=floor)
        if first.quality.unified >= floor:
            assert stub.Enroll(request, timeout=60).quality.unified == pytest.approx(first.quality.unified)
            continue
        with pytest.raises(grpc.RpcError) as caught:
            stub.Enroll(request, timeout=60)
        code, reason, metadata = rejection(caught.value)
        assert (code, reason) == (INVALID, "LOW_QUALITY")
        assert metadata["component"] in COMPONENTS
        assert metadata["component_reason"] in REASONS
        assert float(metadata["unified_quality"]) < floor
        named = {c.name: c for c in first.quality.components}[metadata["component"]]
        assert float(metadata["component_value"]) == pytest.approx(named.value, rel=1e-3, abs=1e-3)
        refused += 1
    assert refused >= len(yale) // 2 - 2  # about half are below the median


def test_verify_and_identify_report_the_probe_quality_and_refuse_below_a_floor(
    yale: dict[str, pb.EnrollResponse], stub: pb_grpc.FaceServiceStub
) -> None:
    template = yale["subject01.normal.png"].embedding
    probe = (YALE / "subject01.happy.png").read_bytes()
    unified = yale["subject01.happy.png"].quality.unified
    verified = stub.Verify(pb.VerifyRequest(image=probe, stored_embeddings=[template]), timeout=60)
    assert verified.match and verified.quality.unified == pytest.approx(unified)
    candidates = [pb.Candidate(id="subject01", embedding=template)]
    found = stub.Identify(pb.IdentifyRequest(image=probe, candidates=candidates, top_k=1), timeout=60)
    assert found.quality.unified == pytest.approx(unified) and len(found.quality.components) == len(
        COMPONENTS
    )
    for call, request in (
        (stub.Verify, pb.VerifyRequest(image=probe, stored_embeddings=[template], min_quality=unified + 1)),
        (stub.Identify, pb.IdentifyRequest(image=probe, candidates=candidates, min_quality=unified + 1)),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=60)
        code, reason, metadata = rejection(caught.value)
        assert (code, reason) == (INVALID, "LOW_QUALITY") and metadata["component"] in COMPONENTS
    for bad in (-1.0, 100.5, float("nan")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Enroll(pb.EnrollRequest(image=probe, min_quality=bad), timeout=60)
        assert rejection(caught.value)[:2] == (INVALID, "REQUEST_INVALID")


@pytest.fixture(scope="module")
def strict(settings: Settings, engine: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    """A server whose settings ask for floors (the same loaded networks)."""
    strict_settings = settings.model_copy(update={"enroll_min_quality": 70.0, "probe_min_quality": 70.0})
    face_server = start_server(strict_settings, engine.sharing_models(strict_settings))
    channel = grpc.insecure_channel(f"127.0.0.1:{face_server.port}")
    try:
        yield pb_grpc.FaceServiceStub(channel)
    finally:
        channel.close()
        face_server.server.stop(None)


def test_floors_in_settings_apply_by_default_and_a_request_may_set_its_own(
    yale: dict[str, pb.EnrollResponse], strict: pb_grpc.FaceServiceStub
) -> None:
    health = strict.Health(pb.HealthRequest(), timeout=30)
    assert (health.enroll_min_quality, health.probe_min_quality) == (70.0, 70.0)
    low = [n for n, r in yale.items() if r.quality.unified < 69.0]
    high = [n for n, r in yale.items() if r.quality.unified > 71.0]
    assert len(low) >= 20 and len(high) >= 20
    template = yale["subject01.normal.png"].embedding
    for name in low:
        image = (YALE / name).read_bytes()
        for call, request in (
            (strict.Enroll, pb.EnrollRequest(image=image)),
            (strict.Verify, pb.VerifyRequest(image=image, stored_embeddings=[template])),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call(request, timeout=60)
            assert rejection(caught.value)[1] == "LOW_QUALITY"
        assert strict.Enroll(pb.EnrollRequest(image=image, min_quality=0), timeout=60).quality.unified < 70.0
    for name in high:
        assert (
            strict.Enroll(pb.EnrollRequest(image=(YALE / name).read_bytes()), timeout=60).quality.unified
            > 70.0
        )


def test_the_sdk_surfaces_the_components_and_the_floors(
    yale: dict[str, pb.EnrollResponse], server: FaceServer
) -> None:
    from facesvc_client import FaceClient, LowQualityError

    with FaceClient(f"127.0.0.1:{server.port}", timeout=60) as client:
        low = min(yale, key=lambda n: yale[n].quality.unified)
        enrolled = client.enroll(YALE / low)
        assert enrolled.quality.unified == pytest.approx(yale[low].quality.unified, abs=0.01)
        assert {c.name for c in enrolled.quality.components} == COMPONENTS
        weakest = enrolled.quality.weakest()
        assert weakest is not None and weakest.name in COMPONENTS
        with pytest.raises(LowQualityError) as caught:
            client.enroll(YALE / low, min_quality=enrolled.quality.unified + 5)
        assert caught.value.metadata["component"] in COMPONENTS
        template = client.enroll(YALE / "subject01.normal.png").embedding
        probe = YALE / "subject01.happy.png"
        assert client.verify(probe, template).quality.unified > 0
        for call in (
            lambda: client.verify(probe, template, min_quality=99.5),
            lambda: client.identify(probe, {"subject01": template}, min_quality=99.5),
        ):
            with pytest.raises(LowQualityError):
                call()
        assert client.health().probe_min_quality == 0.0
