"""Enroll with several photos of one person, a liveness-free check of the templates chosen,
and the open-set rule's template weights, against a real server."""

from __future__ import annotations

import itertools
import math

import grpc
import numpy as np
import pytest

from facesvc.engine.matching import open_set
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import CELEBS, identities, photo, rejection
from tests.images import jpeg


@pytest.fixture(scope="module")
def people(enrolled: dict[str, pb.Embedding]) -> dict[str, list[str]]:
    """Each celebs person's photos that enroll on their own (two or more)."""
    by_person: dict[str, list[str]] = {}
    for name, who in identities(CELEBS).items():
        if name in enrolled:
            by_person.setdefault(who, []).append(name)
    return {who: names for who, names in by_person.items() if len(names) >= 2}


def test_several_photos_give_several_templates(
    stub: pb_grpc.FaceServiceStub, people: dict[str, list[str]]
) -> None:
    accepted = 0
    for names in people.values():
        photos = [photo(CELEBS / n) for n in names[:5]]
        try:
            response = stub.Enroll(pb.EnrollRequest(image=photos[0], more_images=photos[1:]), timeout=60)
        except grpc.RpcError as error:
            assert rejection(error)[1] == "DIFFERENT_PEOPLE"
            continue
        accepted += 1
        assert 1 <= len(response.templates) <= min(3, len(photos))
        assert response.templates[0].embedding == response.embedding
        assert response.templates[0].quality == response.quality
        indices = [t.image_index for t in response.templates]
        assert len(set(indices)) == len(indices) and all(0 <= i < len(photos) for i in indices)
        scores = [t.quality.unified for t in response.templates]
        assert scores[0] == max(scores)  # the best photo first, by the score that predicts failure
    assert accepted >= 0.9 * len(people), (accepted, len(people))


def test_one_photo_answers_as_before(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    name = next(iter(enrolled))
    response = stub.Enroll(pb.EnrollRequest(image=photo(CELEBS / name)), timeout=30)
    assert response.embedding == enrolled[name]
    assert [t.embedding for t in response.templates] == [response.embedding]
    assert response.templates[0].image_index == 0


def test_max_templates(stub: pb_grpc.FaceServiceStub, people: dict[str, list[str]]) -> None:
    names = max(people.values(), key=len)[:5]
    photos = [photo(CELEBS / n) for n in names]
    one = stub.Enroll(pb.EnrollRequest(image=photos[0], more_images=photos[1:], max_templates=1), timeout=60)
    assert len(one.templates) == 1
    many = stub.Enroll(
        pb.EnrollRequest(image=photos[0], more_images=photos[1:], max_templates=50), timeout=60
    )
    assert len(many.templates) <= 5


def test_photos_of_different_people_are_refused(
    stub: pb_grpc.FaceServiceStub, people: dict[str, list[str]]
) -> None:
    refused = 0
    pairs = list(itertools.combinations(sorted(people), 2))
    for first, second in pairs:
        request = pb.EnrollRequest(
            image=photo(CELEBS / people[first][0]),
            more_images=[photo(CELEBS / people[first][1]), photo(CELEBS / people[second][0])],
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.Enroll(request, timeout=60)
        code, reason, metadata = rejection(caught.value)
        if reason == "DIFFERENT_PEOPLE":
            assert code is grpc.StatusCode.INVALID_ARGUMENT
            refused += metadata["image_index"] in {"1", "2"}
    assert refused >= 0.95 * len(pairs), (refused, len(pairs))


def test_a_photo_without_a_face_is_named(stub: pb_grpc.FaceServiceStub, people: dict[str, list[str]]) -> None:
    names = next(iter(people.values()))
    blank = jpeg(np.full((400, 400, 3), 128, dtype=np.uint8))
    request = pb.EnrollRequest(image=photo(CELEBS / names[0]), more_images=[photo(CELEBS / names[1]), blank])
    with pytest.raises(grpc.RpcError) as caught:
        stub.Enroll(request, timeout=60)
    code, reason, metadata = rejection(caught.value)
    assert (code, reason, metadata["image_index"]) == (grpc.StatusCode.INVALID_ARGUMENT, "NO_FACE", "2")


def test_too_many_photos(stub: pb_grpc.FaceServiceStub, people: dict[str, list[str]]) -> None:
    image = jpeg(np.full((200, 200, 3), 128, dtype=np.uint8))  # counted before any is analysed
    with pytest.raises(grpc.RpcError) as caught:
        stub.Enroll(pb.EnrollRequest(image=image, more_images=[image] * 5), timeout=60)
    code, reason, metadata = rejection(caught.value)
    assert reason == "TOO_MANY_IMAGES", (code, reason, metadata)
    assert (code, reason, metadata["images"], metadata["max_images"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "TOO_MANY_IMAGES",
        "6",
        "5",
    )


def test_health_publishes_the_template_rule(stub: pb_grpc.FaceServiceStub) -> None:
    health = stub.Health(pb.HealthRequest(), timeout=10)
    weights = list(health.open_set.template_weights)
    assert weights[0] == 1.0 and len(weights) == 5
    assert all(b > a for a, b in itertools.pairwise(weights))
    assert all(w <= k for k, w in enumerate(weights, 1))  # fewer chances than independent templates
    assert (health.enroll_max_images, health.enroll_max_templates) == (5, 5)


def test_identify_counts_templates(stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]) -> None:
    """The same gallery, each identity with one or two templates: two weigh more (a stricter
    threshold), a mixed gallery in between."""
    who = identities(CELEBS)
    rows = [(who[name], e) for name, e in enrolled.items()]
    first: dict[str, pb.Embedding] = {}
    second: dict[str, pb.Embedding] = {}
    for person, embedding in rows:
        (second if person in first else first).setdefault(person, embedding)
    probe = photo(CELEBS / next(iter(enrolled)))
    one = [pb.Candidate(id=p, embedding=e) for p, e in first.items()]
    two = one + [pb.Candidate(id=p, embedding=e) for p, e in second.items()]
    single = stub.Identify(pb.IdentifyRequest(image=probe, candidates=one), timeout=30)
    double = stub.Identify(pb.IdentifyRequest(image=probe, candidates=two), timeout=30)
    table = open_set.table_for("SFace")
    assert table is not None
    assert single.gallery_weight == single.gallery_identities == len(first)
    expected = len(first) - len(second) + math.ceil(table.template_weights[1] * len(second) - 1e-6)
    assert double.gallery_identities == len(first) and double.gallery_weight >= expected - 1
    assert double.threshold <= single.threshold


def test_a_gallery_mixing_models_is_refused(
    stub: pb_grpc.FaceServiceStub, enrolled: dict[str, pb.Embedding]
) -> None:
    embeddings = list(enrolled.values())[:3]
    foreign = pb.Embedding(values=list(embeddings[2].values), model="Facenet512")
    candidates = [pb.Candidate(id=str(i), embedding=e) for i, e in enumerate([*embeddings[:2], foreign])]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Identify(pb.IdentifyRequest(image=photo(CELEBS / next(iter(enrolled))), candidates=candidates))
    code, reason, metadata = rejection(caught.value)
    assert (code, reason, metadata["index"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "EMBEDDING_MODEL_MISMATCH",
        "2",
    )
