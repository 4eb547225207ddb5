"""Model upgrades without re-enrolment (issue 28), through a real server with real photos:
SFace serving, the fused SFace+Dlib as the next model (docs/MODELS.md, "Migrating")."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.migration import Migration
from facesvc.errors import ModelUnavailableError
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import CELEBS, PAD, ROOT, identities, pairs, rejection, start_server

LFW = ROOT.parent / "shared" / "lfw-devtrain"
EXAMPLE = ROOT / "client" / "examples" / "attendance.py"
FUSED = "SFace+Dlib"
#: Press photos are reproductions (conftest): the recognition tests take upgrades from
#: them without the live verdict; test_frames_not_judged_live_get_none runs the rule.
SETTINGS = Settings(
    port=0,
    host="127.0.0.1",
    model_next=FUSED,
    presentation_attack="report",
    model_upgrade_requires_live=False,
    min_face_size=64,
)


@pytest.fixture(scope="module")
def migrating() -> FaceEngine:
    engine = FaceEngine(SETTINGS)
    engine.load()
    return engine


def _server(settings: Settings, engine: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    face_server = start_server(settings, engine)
    with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
        yield pb_grpc.FaceServiceStub(channel)
    face_server.stop(None).wait()


@pytest.fixture(scope="module")
def stub(migrating: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    yield from _server(SETTINGS, migrating)


@pytest.fixture(scope="module")
def fused_stub(migrating: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    """A server whose current model is the fused one (the same loaded networks)."""
    settings = SETTINGS.model_copy(update={"model": FUSED, "model_next": ""})
    engine = migrating.sharing_models(settings)
    assert migrating.migration is not None and migrating.migration.next is not None
    engine._recognizer = migrating.migration.next
    yield from _server(settings, engine)


def _photo(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def celebs(stub: pb_grpc.FaceServiceStub) -> dict[str, pb.Embedding]:
    return {
        name: stub.Enroll(pb.EnrollRequest(image=_photo(CELEBS / name))).embedding
        for name in identities(CELEBS)
    }


def test_health_publishes_the_models_and_the_confident_line(stub: pb_grpc.FaceServiceStub) -> None:
    health = stub.Health(pb.HealthRequest())
    models = health.models
    assert (models.current, models.next, models.previous) == ("SFace", FUSED, "")
    # SFace's FAR 0.01% point: ten times below the default FAR 0.1% of `threshold`.
    assert models.upgrade_threshold == pytest.approx(0.577) and models.upgrade_threshold < health.threshold
    assert models.upgrade_far == pytest.approx(0.0001) and models.upgrade_fpir == pytest.approx(0.001)


def test_genuine_verify_returns_a_working_next_model_template(
    stub: pb_grpc.FaceServiceStub, fused_stub: pb_grpc.FaceServiceStub, celebs: dict[str, pb.Embedding]
) -> None:
    """Every genuine celebs pair: the upgrade is returned for nearly all, and it matches the
    same person's fused enrolment on a fused server (a template that works)."""
    genuine = [(a, b) for a, b, same in pairs(CELEBS) if same]
    upgraded = works = 0
    for a, b in genuine:
        reply = stub.Verify(pb.VerifyRequest(image=_photo(CELEBS / b), stored_embeddings=[celebs[a]]))
        assert reply.match
        if reply.HasField("upgrade"):
            upgraded += 1
            up = reply.upgrade
            assert up.template.model == FUSED and len(up.template.values) == 256
            assert up.from_model == "SFace" and up.distance <= up.threshold < reply.threshold
            check = fused_stub.Verify(
                pb.VerifyRequest(image=_photo(CELEBS / a), stored_embeddings=[up.template])
            )
            works += check.match
    assert upgraded >= 0.95 * len(genuine), (upgraded, len(genuine))
    assert works == upgraded


def test_impostors_never_get_an_upgrade(stub: pb_grpc.FaceServiceStub) -> None:
    """lfw-devtrain's first 300 different-person pairs (LFW's own impostor pairs)."""
    impostors = [(a, b) for a, b, same in pairs(LFW) if not same][:300]
    returned = refused = 0
    for a, b in impostors:
        try:
            stored = stub.Enroll(
                pb.EnrollRequest(image=_photo(LFW / a), face_selection=pb.FACE_SELECTION_CENTRAL)
            )
            reply = stub.Verify(
                pb.VerifyRequest(
                    image=_photo(LFW / b),
                    stored_embeddings=[stored.embedding],
                    face_selection=pb.FACE_SELECTION_CENTRAL,
                )
            )
        except grpc.RpcError:
            refused += 1
            continue
        returned += reply.HasField("upgrade")
    assert refused < 10
    assert returned == 0


def test_identify_upgrades_under_the_right_id_only(
    stub: pb_grpc.FaceServiceStub, celebs: dict[str, pb.Embedding]
) -> None:
    names = identities(CELEBS)
    first: dict[str, str] = {}
    for photo, person in sorted(names.items()):
        first.setdefault(person, photo)
    gallery = [pb.Candidate(id=person, embedding=celebs[photo]) for person, photo in first.items()]
    found = upgraded = 0
    for photo, person in sorted(names.items()):
        if first[person] == photo:
            continue
        reply = stub.Identify(pb.IdentifyRequest(image=_photo(CELEBS / photo), candidates=gallery, top_k=2))
        top = reply.matches[0]
        if top.match and top.id == person:
            found += 1
        if reply.HasField("upgrade"):
            assert top.match and reply.upgrade.id == top.id == person
            assert not reply.matches[1].match
            upgraded += 1
    assert found >= 40 and upgraded >= 0.9 * found, (found, upgraded)


def test_a_mixed_gallery_is_compared_model_by_model(
    stub: pb_grpc.FaceServiceStub, fused_stub: pb_grpc.FaceServiceStub, celebs: dict[str, pb.Embedding]
) -> None:
    """Half the people hold only SFace templates, half only fused ones (128 and 256 values):
    each is found by its own model, identities are counted per model, and a person
    already migrated gets no second upgrade."""
    names = identities(CELEBS)
    first: dict[str, str] = {}
    for photo, person in sorted(names.items()):
        first.setdefault(person, photo)
    people = sorted(first)
    fused = set(people[::2])
    gallery = []
    for person in people:
        photo = first[person]
        if person in fused:
            embedding = fused_stub.Enroll(pb.EnrollRequest(image=_photo(CELEBS / photo))).embedding
        else:
            embedding = celebs[photo]
        gallery.append(pb.Candidate(id=person, embedding=embedding))
    found = {"SFace": 0, FUSED: 0}
    for photo, person in sorted(names.items()):
        if first[person] == photo:
            continue
        reply = stub.Identify(pb.IdentifyRequest(image=_photo(CELEBS / photo), candidates=gallery))
        assert reply.gallery_identities == len(people)
        top = reply.matches[0]
        if top.match:
            assert top.id == person
            assert top.model == (FUSED if person in fused else "SFace")
            found[top.model] += 1
            if person in fused:
                assert not reply.HasField("upgrade")  # already holds a next-model template
            elif reply.HasField("upgrade"):
                assert reply.upgrade.id == person and reply.upgrade.template.model == FUSED
    assert min(found.values()) >= 15, found
    # Verify over one person's templates of both models.
    person = people[0]
    photo = next(p for p, who in sorted(names.items()) if who == person and p != first[person])
    both = [celebs[first[person]], gallery[0].embedding]
    reply = stub.Verify(pb.VerifyRequest(image=_photo(CELEBS / photo), stored_embeddings=both))
    assert reply.match and reply.best_template_index in (0, 1)


def test_frames_not_judged_live_get_none(migrating: FaceEngine) -> None:
    """NUAA: enrolled from a live capture, checked with prints of the same people. With the
    live verdict required, a frame the presentation-attack stage judges a print never
    carries an upgrade, whatever its distance; live frames judged live do."""
    settings = SETTINGS.model_copy(update={"model_upgrade_requires_live": True})
    engine = migrating.sharing_models(settings)
    assert migrating.migration is not None
    engine.migration = Migration(settings, migrating._recognizer, migrating.migration.next)  # type: ignore[arg-type]
    lives = sorted((PAD / "nuaa" / "ClientRaw").glob("*/*.jpg"))
    prints = sorted((PAD / "nuaa" / "ImposterRaw").glob("*/*.jpg"))
    subjects = sorted({p.parent.name for p in lives} & {p.parent.name for p in prints})[:6]
    stub_iter = _server(settings, engine)
    stub = next(stub_iter)
    judged_print = live_upgrades = 0
    try:
        for subject in subjects:
            own = [p for p in lives if p.parent.name == subject]
            try:
                stored = stub.Enroll(pb.EnrollRequest(image=_photo(own[0]))).embedding
            except grpc.RpcError:
                continue
            for frame in [*own[1::20][:3], *[p for p in prints if p.parent.name == subject][::20][:3]]:
                try:
                    reply = stub.Verify(pb.VerifyRequest(image=_photo(frame), stored_embeddings=[stored]))
                except grpc.RpcError:
                    continue  # a refused frame: no answer at all, so no upgrade
                verdict = next(c for c in reply.liveness_checks if c.name == "presentation_attack")
                if not verdict.passed:
                    judged_print += 1
                    assert not reply.HasField("upgrade")
                elif reply.HasField("upgrade"):
                    live_upgrades += 1
    finally:
        stub_iter.close()
    assert judged_print >= 5 and live_upgrades >= 3, (judged_print, live_upgrades)


def test_a_server_without_a_next_model_returns_none(server_stub: pb_grpc.FaceServiceStub) -> None:
    stored = server_stub.Enroll(pb.EnrollRequest(image=_photo(CELEBS / "img1.jpg"))).embedding
    reply = server_stub.Verify(
        pb.VerifyRequest(image=_photo(CELEBS / "img2.jpg"), stored_embeddings=[stored])
    )
    assert reply.match and not reply.HasField("upgrade")
    assert not server_stub.Health(pb.HealthRequest()).HasField("models")


@pytest.fixture
def server_stub(stub: pb_grpc.FaceServiceStub, channel: grpc.Channel) -> pb_grpc.FaceServiceStub:
    return pb_grpc.FaceServiceStub(channel)  # conftest's session server: no next model


def test_a_template_of_a_model_not_loaded_is_refused(stub: pb_grpc.FaceServiceStub) -> None:
    foreign = pb.Embedding(values=list(np.ones(512, dtype=np.float32)), model="Facenet512")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Verify(pb.VerifyRequest(image=_photo(CELEBS / "img1.jpg"), stored_embeddings=[foreign]))
    code, reason, metadata = rejection(caught.value)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "EMBEDDING_MODEL_MISMATCH")
    assert metadata["served_models"] == f"SFace,{FUSED}" and metadata["embedding_model"] == "Facenet512"


@pytest.mark.parametrize("setting", ["model_next", "model_previous"])
def test_a_model_not_shipped_is_refused_at_start_up(setting: str) -> None:
    engine = FaceEngine(Settings(port=0, **{setting: "Facenet512"}))  # type: ignore[arg-type]
    with pytest.raises(ModelUnavailableError, match="is not a model this service ships"):
        engine.load()


def test_the_attendance_example_migrates(migrating: FaceEngine, tmp_path: Path) -> None:
    """Three employees enrolled with SFace; one check-in each stores the fused template,
    drops the SFace one, and `report` says all three are migrated; the next check-in
    finds them through the fused templates (a gallery of the next model only)."""
    face_server = start_server(SETTINGS, migrating)
    db = tmp_path / "office.db"

    def attendance(*args: str | Path) -> list[dict[str, Any]]:
        done = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--db",
                str(db),
                "--target",
                f"127.0.0.1:{face_server.port}",
                *map(str, args),
            ],
            capture_output=True,
            text=True,
            env=os.environ | {"OPENCV_LOG_LEVEL": "ERROR"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    try:
        for person, photo in (("id00", "img1.jpg"), ("id01", "img13.jpg"), ("id02", "img16.jpg")):
            attendance("enroll", "--allow-plain", person, CELEBS / photo)
        marked = attendance("mark", *(CELEBS / f for f in ("img2.jpg", "img14.jpg", "img17.jpg")))
        assert [(m["employee"], m.get("upgraded_to")) for m in marked] == [
            ("id00", FUSED),
            ("id01", FUSED),
            ("id02", FUSED),
        ]
        with sqlite3.connect(db) as connection:
            models = connection.execute("SELECT DISTINCT model FROM templates").fetchall()
        assert models == [(FUSED,)]
        *_, migration = attendance("report")
        assert migration == {
            "status": "migration",
            "model": FUSED,
            "migrated": 3,
            "employees": 3,
            "share": 1.0,
        }
        again = attendance("mark", CELEBS / "img4.jpg")
        assert again[0]["employee"] == "id00" and "upgraded_to" not in again[0]
    finally:
        face_server.stop(None).wait()
