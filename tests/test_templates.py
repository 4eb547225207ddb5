"""Sealed templates (facesvc.engine.templates.sealing) against real servers and real photos: the
same decisions as plain embeddings, every altered byte refused, keys kept apart, rotated,
reloaded, and nothing plain in the logs."""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.templates import KeyRing, Templates
from facesvc.rpc import converters, wire
from facesvc.rpc.server import FaceServer
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import (
    CELEBS,
    YALE,
    identities,
    log_lines,
    pairs,
    photo,
    rejection,
    serving_ports,
    spawn_server,
    start_server,
)
from tests.test_wire import varint

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_RELOADED = "template keys not reloaded; the previous ring stays in use"
IMAGE = photo("img1.jpg")


def key_file(path: Path, *key_ids: str, mode: int = 0o600) -> Path:
    """A key ring file with a fresh random key per id (the first seals)."""
    path.write_text("".join(KeyRing.generate_line(key_id) + "\n" for key_id in key_ids))
    path.chmod(mode)
    return path


def lines_of(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().split())


def write_ring(path: Path, lines: dict[str, str]) -> None:
    """Rewrite a ring file in place with these id -> key lines, first seals."""
    path.write_text("".join(f"{key_id}:{key}\n" for key_id, key in lines.items()))
    path.chmod(0o600)


class Sealing:
    """A real server with a key ring, sharing the session's loaded engine."""

    def __init__(self, engine: FaceEngine, keys: Path | None, mode: str | None = None) -> None:
        self.settings = Settings(port=0, host="127.0.0.1", template_keys_file=keys, templates=mode)  # type: ignore[arg-type]
        self.server: FaceServer = start_server(self.settings, engine)
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.server.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        )
        self.stub = pb_grpc.FaceServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()

    def enroll(self, image: bytes) -> pb.Embedding:
        return self.stub.Enroll(pb.EnrollRequest(image=image), timeout=30).embedding

    def refusal(self, call: str, request: object) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(self.stub, call)(request, timeout=30)
        return rejection(caught.value)

    def serving(self) -> bool:
        health = health_pb2_grpc.HealthStub(self.channel)
        return (
            health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )


@pytest.fixture
def sealing(engine: FaceEngine) -> Iterator[list[Sealing]]:
    started: list[Sealing] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def ring_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("ring-a") / "keys", "a-2026")


@pytest.fixture(scope="module")
def sealed_server(engine: FaceEngine, ring_a: Path) -> Iterator[Sealing]:
    server = Sealing(engine, ring_a)  # a key file and no mode: sealed
    yield server
    server.close()


@pytest.fixture(scope="module")
def sealed_template(sealed_server: Sealing) -> pb.Embedding:
    return sealed_server.enroll(IMAGE)


# ---- what Enroll hands out ---------------------------------------------------------------


def test_with_a_key_enroll_returns_an_opaque_blob_that_differs_every_time(
    sealed_server: Sealing, stub: pb_grpc.FaceServiceStub
) -> None:
    plain = stub.Enroll(pb.EnrollRequest(image=IMAGE), timeout=30).embedding
    first, second = sealed_server.enroll(IMAGE), sealed_server.enroll(IMAGE)
    assert not first.values and first.model == "SFace" and first.key_id == "a-2026"
    assert first.sealed and second.sealed and first.sealed != second.sealed
    values = np.asarray(plain.values, dtype="<f4").tobytes()
    for blob in (first.sealed, second.sealed):
        for start in range(0, len(values) - 8, 4):  # no 8-byte run of the vector inside
            assert values[start : start + 8] not in blob
    health = sealed_server.stub.Health(pb.HealthRequest(), timeout=5)
    assert health.templates == pb.TEMPLATE_MODE_SEALED and health.template_key_id == "a-2026"
    assert stub.Health(pb.HealthRequest(), timeout=5).templates == pb.TEMPLATE_MODE_PLAIN


# ---- the same decisions as plain -----------------------------------------------------------


@pytest.mark.parametrize("folder", [CELEBS, YALE], ids=["celebs", "yale"])
def test_sealed_templates_decide_every_pair_as_plain_ones_do(
    folder: Path, sealed_server: Sealing, stub: pb_grpc.FaceServiceStub
) -> None:
    """Every photo of the set enrolled plain and sealed; each probe photo then identified
    against the templates it is paired with (one Identify per probe, one entry per pair),
    once with the plain and once with the sealed templates: the same distance and the same
    match for every genuine and impostor pair. Every tenth pair also goes through Verify."""
    plain: dict[str, pb.Embedding] = {}
    sealed: dict[str, pb.Embedding] = {}
    refused: dict[str, set[str]] = {"plain": set(), "sealed": set()}
    for name in identities(folder):
        data = (folder / name).read_bytes()
        for kind, call, into in (
            ("plain", stub.Enroll, plain),
            ("sealed", sealed_server.stub.Enroll, sealed),
        ):
            try:
                into[name] = call(pb.EnrollRequest(image=data), timeout=30).embedding
            except grpc.RpcError:
                refused[kind].add(name)
    assert refused["plain"] == refused["sealed"] and len(sealed) >= 0.9 * len(identities(folder))
    partners: dict[str, list[str]] = defaultdict(list)
    labelled = [(a, b, same) for a, b, same in pairs(folder) if a in plain and b in plain]
    for a, b, _ in labelled:
        partners[b].append(a)
    outcome: dict[str, dict[tuple[str, str], tuple[float, bool]]] = {"plain": {}, "sealed": {}}
    for probe, stored in partners.items():
        data = (folder / probe).read_bytes()
        for kind, call, templates in (
            ("plain", stub.Identify, plain),
            ("sealed", sealed_server.stub.Identify, sealed),
        ):
            gallery = [pb.Candidate(id=a, embedding=templates[a]) for a in stored]
            response = call(pb.IdentifyRequest(image=data, candidates=gallery, top_k=len(stored)), timeout=30)
            for match in response.matches:
                outcome[kind][(match.id, probe)] = (match.distance, match.match)
    assert len(outcome["sealed"]) == len(labelled) and outcome["sealed"] == outcome["plain"]
    genuine = [same for a, b, same in labelled if outcome["sealed"][(a, b)][1] == same]
    assert len(genuine) >= 0.95 * len(labelled)  # the decisions are right, not merely equal
    for a, b, _ in labelled[::10]:
        data = (folder / b).read_bytes()
        verdicts = [
            call(pb.VerifyRequest(image=data, stored_embeddings=[templates[a]]), timeout=30)
            for call, templates in ((stub.Verify, plain), (sealed_server.stub.Verify, sealed))
        ]
        assert (verdicts[0].distance, verdicts[0].match) == (verdicts[1].distance, verdicts[1].match)
        assert verdicts[1].distance == pytest.approx(outcome["sealed"][(a, b)][0], abs=1e-6)


# ---- tampering -------------------------------------------------------------------------


def test_every_altered_byte_is_refused_and_the_server_keeps_serving(
    sealed_server: Sealing, sealed_template: pb.Embedding
) -> None:
    blob = sealed_template.sealed
    problems: dict[str, int] = defaultdict(int)
    for position in range(len(blob)):
        altered = bytearray(blob)
        altered[position] ^= 0x5A
        template = pb.Embedding(sealed=bytes(altered), model="SFace")
        code, reason, metadata = sealed_server.refusal(
            "Verify", pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template, template])
        )
        assert (code, reason, metadata["index"]) == (INVALID, "TEMPLATE_INVALID", "1"), position
        problems[metadata["problem"]] += 1
    for cut in (0, 1, 3, len(blob) // 2, len(blob) - 1):  # truncated
        code, reason, metadata = sealed_server.refusal(
            "Verify",
            pb.VerifyRequest(image=IMAGE, stored_embeddings=[pb.Embedding(sealed=blob[:cut] or b"x")]),
        )
        assert (reason, metadata["index"]) == ("TEMPLATE_INVALID", "0")
    assert sum(problems.values()) == len(blob) and problems["authentication"] > len(blob) // 2
    assert sealed_server.serving()
    verdict = sealed_server.stub.Verify(
        pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template]), timeout=30
    )
    assert verdict.match  # the untouched template still opens


def test_a_swapped_model_tag_and_a_bad_row_of_a_gallery_are_refused_with_their_index(
    sealed_server: Sealing, sealed_template: pb.Embedding
) -> None:
    swapped = pb.Embedding(sealed=sealed_template.sealed, model="Dlib")
    code, reason, metadata = sealed_server.refusal(
        "Verify", pb.VerifyRequest(image=IMAGE, stored_embeddings=[swapped])
    )
    assert (reason, metadata["problem"]) == ("TEMPLATE_INVALID", "model_tag")
    blobs = [sealed_server.enroll(photo(n)) for n in ("img2.jpg", "img11.jpg", "img17.jpg")]
    rows = [b.sealed for b in blobs] * 40
    rows[77] = rows[77][:-1] + bytes([rows[77][-1] ^ 1])
    ids = [f"p{i}" for i in range(len(rows))]
    for request in (
        pb.IdentifyRequest(image=IMAGE, sealed_candidates=pb.SealedGallery(ids=ids, templates=rows)),
        pb.IdentifyRequest(
            image=IMAGE,
            candidates=[
                pb.Candidate(id=i, embedding=pb.Embedding(sealed=r, model="SFace"))
                for i, r in zip(ids, rows, strict=True)
            ],
        ),
    ):
        code, reason, metadata = sealed_server.refusal("Identify", request)
        assert (code, reason, metadata["index"], metadata["problem"]) == (
            INVALID,
            "TEMPLATE_INVALID",
            "77",
            "authentication",
        )


# ---- modes --------------------------------------------------------------------------------


def test_sealed_mode_refuses_plain_embeddings_and_both_accepts_either(
    engine: FaceEngine,
    sealing: list[Sealing],
    ring_a: Path,
    sealed_server: Sealing,
    sealed_template: pb.Embedding,
    stub: pb_grpc.FaceServiceStub,
) -> None:
    plain = stub.Enroll(pb.EnrollRequest(image=IMAGE), timeout=30).embedding
    gallery = [pb.Candidate(id="a", embedding=plain)]
    for call, request, field in (
        ("Verify", pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template, plain]), "1"),
        ("Identify", pb.IdentifyRequest(image=IMAGE, candidates=gallery), "0"),
        (
            "Identify",
            pb.IdentifyRequest(
                image=IMAGE,
                packed_candidates=pb.PackedGallery(
                    ids=["a"], values=np.asarray(plain.values, "<f4").tobytes(), model="SFace"
                ),
            ),
            "0",
        ),
    ):
        code, reason, metadata = sealed_server.refusal(call, request)
        assert (code, reason, metadata["problem"], metadata["index"]) == (
            INVALID,
            "TEMPLATE_INVALID",
            "plain_refused",
            field,
        )
    both = Sealing(engine, ring_a, "both")
    sealing.append(both)
    verdict = both.stub.Verify(
        pb.VerifyRequest(image=IMAGE, stored_embeddings=[plain, sealed_template]), timeout=30
    )
    assert verdict.match and both.enroll(IMAGE).sealed
    mixed = [pb.Candidate(id="plain", embedding=plain), pb.Candidate(id="sealed", embedding=sealed_template)]
    matches = both.stub.Identify(
        pb.IdentifyRequest(image=IMAGE, candidates=mixed, top_k=2), timeout=30
    ).matches
    assert {m.id for m in matches} == {"plain", "sealed"} and matches[0].distance == matches[1].distance
    # plain mode with a key ring: Enroll hands out values, sealed templates still open
    plain_mode = Sealing(engine, ring_a, "plain")
    sealing.append(plain_mode)
    assert plain_mode.enroll(IMAGE).values and not plain_mode.enroll(IMAGE).sealed
    assert plain_mode.stub.Verify(
        pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template]), timeout=30
    ).match
    # no key ring at all: a sealed template cannot open, and Reseal cannot seal
    code, reason, metadata = rejection_of(
        stub.Verify, pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template])
    )
    assert (reason, metadata["problem"]) == ("TEMPLATE_INVALID", "unknown_key")
    code, reason, _ = rejection_of(stub.Reseal, pb.ResealRequest(templates=[plain]))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SEALING_UNAVAILABLE")


def rejection_of(call, request):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return rejection(caught.value)


# ---- keys ---------------------------------------------------------------------------------


def test_a_template_of_another_key_ring_does_not_open(
    engine: FaceEngine,
    sealing: list[Sealing],
    tmp_path: Path,
    sealed_server: Sealing,
    sealed_template: pb.Embedding,
) -> None:
    """Another deployment with a key of the same id, and one with its own id: neither opens
    the other's templates (unlinkable across deployments)."""
    same_id = Sealing(engine, key_file(tmp_path / "same-id", "a-2026"))
    own_id = Sealing(engine, key_file(tmp_path / "own-id", "tenant-b"))
    sealing.extend([same_id, own_id])
    request = pb.VerifyRequest(image=IMAGE, stored_embeddings=[sealed_template])
    assert same_id.refusal("Verify", request)[1:] == (
        "TEMPLATE_INVALID",
        {"index": "0", "problem": "authentication"},
    )
    _code, reason, metadata = own_id.refusal("Verify", request)
    assert (reason, metadata["problem"], metadata["key_id"]) == ("TEMPLATE_INVALID", "unknown_key", "a-2026")
    theirs = own_id.enroll(IMAGE)
    assert (
        sealed_server.refusal("Verify", pb.VerifyRequest(image=IMAGE, stored_embeddings=[theirs]))[2][
            "key_id"
        ]
        == "tenant-b"
    )


def test_rotation_reseal_moves_templates_to_the_new_key(
    engine: FaceEngine, sealing: list[Sealing], tmp_path: Path, stub: pb_grpc.FaceServiceStub
) -> None:
    keys = key_file(tmp_path / "keys", "A")
    server = Sealing(engine, keys)
    sealing.append(server)
    photos = [photo(n) for n in ("img2.jpg", "img11.jpg", "img17.jpg")]
    under_a = [server.enroll(p) for p in photos]
    assert {t.key_id for t in under_a} == {"A"}
    gallery_a = server.stub.Reseal(
        pb.ResealRequest(templates=under_a, ids=["x", "y", "z"]), timeout=30
    ).packed_gallery
    a_line = lines_of(keys)
    write_ring(keys, {"B": KeyRing.generate_line("B").split(":", 1)[1], **a_line})  # B in front
    verify = lambda t, p: server.stub.Verify(pb.VerifyRequest(image=p, stored_embeddings=[t]), timeout=30)  # noqa: E731
    assert all(verify(t, p).match for t, p in zip(under_a, photos, strict=True))  # A still opens
    assert server.enroll(photos[0]).key_id == "B"
    plain = stub.Enroll(pb.EnrollRequest(image=photos[0]), timeout=30).embedding
    resealed = list(server.stub.Reseal(pb.ResealRequest(templates=[*under_a, plain]), timeout=30).templates)
    assert [t.key_id for t in resealed] == ["B"] * 4 and not any(t.values for t in resealed)
    assert all(r.sealed != t.sealed for r, t in zip(resealed[:3], under_a, strict=True))
    assert server.stub.Health(pb.HealthRequest(), timeout=5).template_key_id == "B"
    write_ring(keys, {k: v for k, v in lines_of(keys).items() if k == "B"})  # A removed
    for old, new, p in zip(under_a, resealed[:3], photos, strict=True):
        _code, reason, metadata = server.refusal("Verify", pb.VerifyRequest(image=p, stored_embeddings=[old]))
        assert (reason, metadata["key_id"]) == ("TEMPLATE_INVALID", "A")
        before = stub.Verify(
            pb.VerifyRequest(
                image=p, stored_embeddings=[stub.Enroll(pb.EnrollRequest(image=p), timeout=30).embedding]
            ),
            timeout=30,
        )
        after = verify(new, p)
        assert after.match and after.distance == pytest.approx(before.distance, abs=1e-6)
    assert verify(resealed[3], photos[0]).match  # the plain one, sealed by Reseal
    _code, reason, metadata = server.refusal(
        "Identify",
        pb.IdentifyRequest(image=photos[0], sealed_candidates=pb.SealedGallery(packed=[gallery_a])),
    )
    assert (reason, metadata["problem"], metadata["key_id"]) == ("TEMPLATE_INVALID", "unknown_key", "A")


def test_a_key_file_open_to_others_or_malformed_is_refused_at_start(
    tmp_path: Path, process: list[subprocess.Popen[str]]
) -> None:
    loose = key_file(tmp_path / "loose", "k1", mode=0o644)
    proc = spawn_server(process, FACESVC_TEMPLATE_KEYS_FILE=str(loose))
    assert proc.wait(timeout=60) == 2
    message = proc.stderr.read() if proc.stderr else ""
    assert str(loose) in message and "chmod 600" in message and "0644" in message
    short = tmp_path / "short"
    short.write_text(f"k1:{base64.b64encode(os.urandom(16)).decode()}\n")
    short.chmod(0o600)
    for env, says in (
        ({"FACESVC_TEMPLATE_KEYS_FILE": str(short)}, "AES-256 needs 32"),
        ({"FACESVC_TEMPLATES": "sealed"}, "needs template_keys_file"),
    ):
        proc = spawn_server(process, **env)
        assert proc.wait(timeout=60) == 2
        assert says in (proc.stderr.read() if proc.stderr else "")


def test_sighup_reloads_the_key_ring_and_a_broken_file_keeps_the_old_one(
    tmp_path: Path, process: list
) -> None:
    keys = key_file(tmp_path / "keys", "first")
    proc = spawn_server(process, FACESVC_TEMPLATE_KEYS_FILE=str(keys))
    port, _ = serving_ports(proc)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        assert stub.Health(pb.HealthRequest(), timeout=5).template_key_id == "first"
        keys.write_text(KeyRing.generate_line("second") + "\n" + keys.read_text())
        proc.send_signal(signal.SIGHUP)
        entry = list(log_lines(proc, "template keys reloaded", time.monotonic() + 30))[-1]
        assert entry["message"] == "template keys reloaded"
        assert entry["current_key"] == "second" and entry["keys"] == 2
        assert stub.Health(pb.HealthRequest(), timeout=5).template_key_id == "second"
        keys.write_text("not a key ring\n")
        proc.send_signal(signal.SIGHUP)
        failed = list(log_lines(proc, NOT_RELOADED, time.monotonic() + 30))[-1]
        assert failed["message"] == NOT_RELOADED and "line 1" in failed["error"]
        assert failed["event"] == "template_keys_reload_failed" and failed["level"] == "ERROR"
        assert stub.Health(pb.HealthRequest(), timeout=5).template_key_id == "second"
        assert proc.poll() is None


def test_nothing_plain_is_logged_at_debug(
    tmp_path: Path, process: list[subprocess.Popen[str]], stub: pb_grpc.FaceServiceStub
) -> None:
    """A sealed server at DEBUG: Enroll, Verify, Identify (both gallery forms), Reseal, and
    tampered templates; no embedding value and no piece of any blob appears in its logs."""
    keys = key_file(tmp_path / "keys", "k1")
    proc = spawn_server(process, FACESVC_TEMPLATE_KEYS_FILE=str(keys), FACESVC_LOG_LEVEL="DEBUG")
    port, _ = serving_ports(proc)
    blobs: list[bytes] = []
    values: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        sealed_stub = pb_grpc.FaceServiceStub(channel)
        for name in ("img1.jpg", "img2.jpg"):
            values.extend(stub.Enroll(pb.EnrollRequest(image=photo(name)), timeout=30).embedding.values)
            blobs.append(sealed_stub.Enroll(pb.EnrollRequest(image=photo(name)), timeout=30).embedding.sealed)
        templates = [pb.Embedding(sealed=b, model="SFace") for b in blobs]
        tampered = pb.Embedding(sealed=blobs[0][:-3] + b"xyz")
        sealed_stub.Verify(pb.VerifyRequest(image=IMAGE, stored_embeddings=templates), timeout=30)
        sealed_stub.Identify(
            pb.IdentifyRequest(
                image=IMAGE, sealed_candidates=pb.SealedGallery(ids=["a", "b"], templates=blobs)
            ),
            timeout=30,
        )
        resealed = sealed_stub.Reseal(pb.ResealRequest(templates=templates), timeout=30).templates
        blobs.extend(t.sealed for t in resealed)
        for request in (
            pb.VerifyRequest(image=IMAGE, stored_embeddings=[tampered]),
            pb.VerifyRequest(
                image=IMAGE, stored_embeddings=[pb.Embedding(values=values[:128], model="SFace")]
            ),
        ):
            with pytest.raises(grpc.RpcError):
                sealed_stub.Verify(request, timeout=30)
    proc.send_signal(signal.SIGTERM)
    logs = proc.communicate(timeout=30)[1]
    assert '"level": "DEBUG"' in logs and "TEMPLATE_INVALID" in logs and "suspicious activity" in logs
    for blob in blobs:
        for start in range(0, len(blob) - 24, 12):
            chunk = blob[start : start + 24]
            assert chunk.hex() not in logs and base64.b64encode(chunk).decode()[4:28] not in logs
            assert repr(chunk)[6:30] not in logs
    for value in values[::5]:
        for text in (f"{value:.6g}", f"{value:.4f}", repr(value)):
            if len(text.strip("-0.")) >= 4:
                assert text not in logs, f"embedding value {text} appears in the logs"


# ---- Identify's parser --------------------------------------------------------------------


def test_sealed_candidates_take_the_fast_path_and_any_other_encoding_the_real_message(tmp_path: Path) -> None:
    keys = key_file(tmp_path / "keys", "k1")
    ring = KeyRing.load(keys)
    rows = np.random.default_rng(3).standard_normal((300, 128)).astype("<f4")
    blobs = [ring.seal(row, "SFace") for row in rows]
    templates = Templates.configured("sealed", keys)
    request = pb.IdentifyRequest(
        image=b"x",
        candidates=[
            pb.Candidate(id=f"id-{i}", embedding=pb.Embedding(sealed=b, model="SFace", key_id="k1"))
            for i, b in enumerate(blobs)
        ],
    )
    call = wire.parse_identify(request.SerializeToString())
    assert call.sealed is not None and call.rows is None and call.sealed.blobs == blobs
    fast = converters.gallery(call, 128, templates)
    assert np.array_equal(fast.matrix, rows) and list(fast.ids) == [f"id-{i}" for i in range(300)]

    # the model tag written before the blob: not canonical, read by the real message
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2]) + varint(len(payload)) + payload

    body = b"".join(
        field(2, field(1, f"id-{i}".encode()) + field(2, field(3, b) + field(2, b"SFace")))
        for i, b in enumerate(blobs)
    )
    slow = wire.parse_identify(field(1, b"x") + body)
    assert slow.sealed is None and slow.rows is None
    gallery = converters.gallery(slow, 128, templates)
    assert np.array_equal(gallery.matrix, rows) and list(gallery.ids) == list(fast.ids)


def test_the_blob_layout_is_as_documented() -> None:
    ring = KeyRing.parse(KeyRing.generate_line("k1") + "\n" + KeyRing.generate_line("k0"))
    values = np.arange(1, 129, dtype=np.float32)
    before = int(time.time())
    blob = ring.seal(values, "SFace")
    assert blob[:3] == b"\xfa\xce\x01" and blob[3] == 2 and blob[4:6] == b"k1" and blob[6:12] == b"\x05SFace"
    dimension, created = struct.unpack(">HQ", blob[12:22])
    assert dimension == 128 and before <= created <= time.time() + 1
    assert len(blob) == 22 + 12 + 4 * 128 + 16
    opened = ring.open(blob)
    assert np.array_equal(opened.values, values) and (opened.model, opened.key_id) == ("SFace", "k1")


# ---- the SDK and the command line pass sealed templates through ---------------------------


def test_the_sdk_and_the_cli_pass_sealed_templates_through_unchanged(
    sealed_server: Sealing, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facesvc_client import FaceClient, SealedTemplate, TemplateInvalidError, template_from_json
    from facesvc_client.cli import Exit, main

    target = f"127.0.0.1:{sealed_server.server.port}"
    with FaceClient(target) as client:
        stored = client.enroll(photo("img1.jpg")).embedding
        assert isinstance(stored, SealedTemplate) and stored.key_id == "a-2026"
        assert template_from_json(stored.to_json()) == stored
        assert client.verify(photo("img2.jpg"), stored).match
        others = [client.enroll(photo(n)).embedding for n in ("img13.jpg", "img16.jpg")]
        gallery = {"id00": stored, "id01": others[0], "id02": others[1]}
        assert client.identify(photo("img2.jpg"), gallery).best.id == "id00"  # type: ignore[union-attr]
        whole = client.seal_gallery(gallery)
        assert client.identify(photo("img2.jpg"), whole).best.id == "id00"  # type: ignore[union-attr]
        (resealed,) = client.reseal([stored])
        assert resealed.sealed != stored.sealed and client.verify(photo("img2.jpg"), resealed).match
        assert client.health().templates == "sealed" and client.health().template_key_id == "a-2026"
        broken = SealedTemplate(stored.sealed[:-1] + bytes([stored.sealed[-1] ^ 1]), "SFace")
        with pytest.raises(TemplateInvalidError) as caught:
            client.verify(photo("img2.jpg"), [stored, broken])
        assert caught.value.metadata["index"] == "1" and caught.value.metadata["problem"] == "authentication"

    def run(*args: str | Path) -> tuple[int, object]:
        code = main(["--target", target, *map(str, args)])
        out = capsys.readouterr().out
        return code, (json.loads(out) if out.strip() else None)

    code, enrolled = run("enroll", photo_path := CELEBS / "img1.jpg")
    assert code == Exit.OK and set(enrolled["embedding"]) == {"model", "sealed", "key_id"}  # type: ignore[index]
    saved = tmp_path / "alice.json"
    saved.write_text(json.dumps(enrolled))
    assert run("verify", CELEBS / "img2.jpg", "--embedding", saved)[0] == Exit.OK
    code, resealed_out = run("reseal", saved)
    assert code == Exit.OK and resealed_out[0]["key_id"] == "a-2026"  # type: ignore[index]
    tampered = dict(enrolled["embedding"])  # type: ignore[index]
    tampered["sealed"] = base64.b64encode(base64.b64decode(tampered["sealed"])[:-2] + b"zz").decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered))
    assert run("verify", photo_path, "--embedding", bad)[0] == Exit.TEMPLATE_INVALID


# ---- sealed galleries: one blob for a whole gallery -----------------------------------------


def test_a_sealed_gallery_from_reseal_identifies_as_the_templates_do_and_refuses_any_change(
    sealed_server: Sealing, stub: pb_grpc.FaceServiceStub
) -> None:
    names = ["img1.jpg", "img2.jpg", "img13.jpg", "img16.jpg", "img17.jpg", "img20.jpg"]
    templates = [sealed_server.enroll(photo(n)) for n in names]
    response = sealed_server.stub.Reseal(pb.ResealRequest(templates=templates, ids=names), timeout=30)
    assert not response.templates and response.packed_gallery[:3] == b"\xfa\xce\x02"
    whole = response.packed_gallery
    probe = photo("img4.jpg")
    one_by_one = sealed_server.stub.Identify(
        pb.IdentifyRequest(
            image=probe,
            top_k=6,
            sealed_candidates=pb.SealedGallery(ids=names, templates=[t.sealed for t in templates]),
        ),
        timeout=30,
    )
    packed = sealed_server.stub.Identify(
        pb.IdentifyRequest(image=probe, top_k=6, sealed_candidates=pb.SealedGallery(packed=[whole])),
        timeout=30,
    )
    assert [(m.id, m.distance) for m in packed.matches] == [(m.id, m.distance) for m in one_by_one.matches]
    assert packed.matches[0].id in ("img1.jpg", "img2.jpg") and packed.matches[0].match
    # every byte of the header and tag, and every 7th of the rest, altered in turn
    positions = sorted({*range(60), *range(len(whole) - 20, len(whole)), *range(60, len(whole), 7)})
    for position in positions:
        altered = bytearray(whole)
        altered[position] ^= 0x41
        code, reason, metadata = sealed_server.refusal(
            "Identify",
            pb.IdentifyRequest(
                image=probe, sealed_candidates=pb.SealedGallery(packed=[whole, bytes(altered)])
            ),
        )
        assert (code, reason, metadata["index"]) == (INVALID, "TEMPLATE_INVALID", "1"), position
    assert sealed_server.serving()
    # a sealed gallery is not a template, nor the other way round
    for request in (
        pb.VerifyRequest(image=probe, stored_embeddings=[pb.Embedding(sealed=whole)]),
        pb.IdentifyRequest(image=probe, sealed_candidates=pb.SealedGallery(packed=[templates[0].sealed])),
    ):
        call = "Verify" if isinstance(request, pb.VerifyRequest) else "Identify"
        assert sealed_server.refusal(call, request)[2]["problem"] == "version"
