"""The `facesvc` command-line tool and the attendance example, against a real server on
port 0 with the real photos: JSON on stdout, words on stderr, an exit code per failure."""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.templates import KeyRing
from facesvc.rpc.server import FaceServer
from facesvc_client.cli import Exit, main
from tests import images
from tests.conftest import CELEBS, ORL, PAD, ROOT, start_server

Run = Callable[..., tuple[int, Any, str]]
EXAMPLE = ROOT / "client" / "examples" / "attendance.py"
NUAA = PAD / "nuaa"


@pytest.fixture(scope="module")
def target(server: FaceServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
def facesvc(target: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the tool in-process: (exit code, parsed stdout or None, stderr)."""

    return _runner(target, capsys)


def _runner(target: str, capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*args: str | Path) -> tuple[int, Any, str]:
        code = main(["--target", target, *map(str, args)])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err

    return run


@pytest.fixture(scope="module")
def alice_file(target: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """enroll's whole output for celebs img1.jpg (id00), as a caller would save it."""
    path = tmp_path_factory.mktemp("cli") / "alice.json"
    with path.open("w") as out:
        subprocess.run(
            [_installed_tool(), "--target", target, "enroll", str(CELEBS / "img1.jpg")],
            stdout=out,
            check=True,
            env=os.environ | {"OPENCV_LOG_LEVEL": "ERROR"},
        )
    return path


def _installed_tool() -> str:
    tool = Path(sys.executable).parent / "facesvc"
    assert tool.exists(), "the facesvc console script is not installed (pip install -e client)"
    return str(tool)


def test_enroll_prints_json_with_the_embedding_and_its_model(alice_file: Path) -> None:
    result = json.loads(alice_file.read_text())
    assert result["embedding"]["model"] == "SFace" and len(result["embedding"]["values"]) == 128
    assert result["face"]["face_count"] == 1 and result["quality"]["score"] >= 30


def test_verify_exit_code_says_match_or_not(facesvc: Run, alice_file: Path, tmp_path: Path) -> None:
    code, out, err = facesvc("verify", CELEBS / "img2.jpg", "--embedding", alice_file)
    assert (code, out["match"], err) == (Exit.OK, True, "")
    assert out["confidence"] >= 50 and out["model"] == "SFace"
    code, out, _ = facesvc("verify", CELEBS / "img13.jpg", "--embedding", alice_file)  # id01
    assert (code, out["match"]) == (Exit.NO_MATCH, False)
    # The bare embedding (as jq .embedding writes it) and a list of them work as well.
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(json.loads(alice_file.read_text())["embedding"]))
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([json.loads(bare.read_text())] * 2))
    for stored in (bare, listed):
        code, out, _ = facesvc("verify", CELEBS / "img2.jpg", "--embedding", stored, "--threshold", "0.5")
        assert (code, out["match"], out["threshold"]) == (Exit.OK, True, 0.5)


def test_identify_with_a_gallery_file(facesvc: Run, alice_file: Path, tmp_path: Path) -> None:
    _, bob, _ = facesvc("enroll", CELEBS / "img13.jpg")  # id01
    alice = json.loads(alice_file.read_text())
    as_mapping = tmp_path / "gallery.json"
    as_mapping.write_text(json.dumps({"alice": alice, "bob": [bob["embedding"]]}))
    code, out, _ = facesvc("identify", CELEBS / "img14.jpg", "--gallery", as_mapping, "--top-k", "2")
    assert code == Exit.OK and [m["id"] for m in out["matches"]] == ["bob", "alice"]
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"id": "alice", "embedding": alice["embedding"]}]))
    code, out, _ = facesvc("identify", CELEBS / "img14.jpg", "--gallery", as_list)
    assert (code, out["matches"][0]["id"], out["matches"][0]["match"]) == (Exit.NO_MATCH, "alice", False)


def test_identify_faces_prints_every_face_as_json(facesvc: Run, tmp_path: Path) -> None:
    groups = ROOT.parent / "shared" / "faces" / "groups"
    gallery = {}
    for who in ("friends_chandler", "friends_joey", "friends_phoebe"):
        for photo in sorted((groups / "enrol" / who).iterdir()):  # the first over the 80 px floor
            code, out, _ = facesvc("enroll", photo, "--face-selection", "largest")
            if code == Exit.OK:
                gallery[who] = out
                break
    both = tmp_path / "gallery.json"
    both.write_text(json.dumps(gallery))
    photo = groups / "group" / "caglarsarikaya-face-recognition-group-photos__all (2).jpg"  # chandler, joey
    code, out, _ = facesvc("identify-faces", photo, "--gallery", both, "--top-k", "2")
    assert code == Exit.OK and out["face_count"] == 2
    named = [face["matches"][0]["id"] for face in out["faces"] if face["matches"][0]["match"]]
    assert sorted(named) == ["friends_chandler", "friends_joey"]
    only_phoebe = tmp_path / "phoebe.json"
    only_phoebe.write_text(json.dumps({"friends_phoebe": gallery["friends_phoebe"]}))
    code, out, _ = facesvc("identify-faces", photo, "--gallery", only_phoebe, "--max-faces", "1")
    assert code == Exit.NO_MATCH and len(out["faces"]) == 1 and out["faces_not_returned"] == 1


def test_health(facesvc: Run) -> None:
    code, out, _ = facesvc("health")
    assert code == Exit.OK
    assert (out["status"], out["model"], out["embedding_dim"]) == ("serving", "SFace", 128)


REJECTED_PHOTOS = [
    ("undecodable", lambda: b"not an image", Exit.IMAGE_UNDECODABLE, "IMAGE_UNDECODABLE"),
    ("orl", lambda: (ORL / "s1" / "1.png").read_bytes(), Exit.IMAGE_TOO_SMALL, "IMAGE_TOO_SMALL"),
    ("bomb", lambda: images.png_header_only(50_000, 50_000), Exit.IMAGE_TOO_LARGE, "IMAGE_TOO_LARGE"),
    ("no-face", lambda: images.jpeg(images.load("img1.jpg")[1300:, :]), Exit.NO_FACE, "NO_FACE"),
    ("couple", lambda: (CELEBS / "couple.jpg").read_bytes(), Exit.MULTIPLE_FACES, "MULTIPLE_FACES"),
    ("tiny-face", lambda: images.shrunk("img27.jpg", 400), Exit.FACE_TOO_SMALL, "FACE_TOO_SMALL"),
    ("blurred-dark", lambda: images.blurred("img1.jpg", 12, 0.12), Exit.LOW_QUALITY, "LOW_QUALITY"),
    ("dark", lambda: images.darkened("img1.jpg", 0.15), Exit.LIVENESS_FAILED, "LIVENESS_FAILED"),
    ("oversized", lambda: b"\xff" * (11 * 1024 * 1024), Exit.REQUEST_TOO_LARGE, "MESSAGE_TOO_LARGE"),
]


@pytest.mark.parametrize(
    ("data", "exit_code", "reason"), [r[1:] for r in REJECTED_PHOTOS], ids=[r[0] for r in REJECTED_PHOTOS]
)
def test_each_rejected_photo_has_its_exit_code(
    facesvc: Run, tmp_path: Path, data: Callable[[], bytes], exit_code: Exit, reason: str
) -> None:
    photo = tmp_path / "photo"
    photo.write_bytes(data())
    code, out, err = facesvc("enroll", photo)
    assert (code, out) == (exit_code, None)
    assert err.startswith("facesvc enroll: ") and reason in err


def test_embedding_problems_have_their_exit_codes(facesvc: Run, tmp_path: Path) -> None:
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"model": "SFace", "values": [0.1] * 127}))
    code, out, err = facesvc("verify", CELEBS / "img1.jpg", "--embedding", short)
    assert (code, out) == (Exit.EMBEDDING_INVALID, None) and "EMBEDDING_INVALID" in err
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"model": "Facenet512", "values": [0.1] * 512}))
    code, _, err = facesvc("verify", CELEBS / "img1.jpg", "--embedding", foreign)
    assert code == Exit.EMBEDDING_MODEL_MISMATCH and "Facenet512" in err


def test_unavailable_and_deadline_exit_codes(facesvc: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}"
    assert main(["health", "--target", nowhere, "--timeout", "1"]) == Exit.UNAVAILABLE
    assert "UNAVAILABLE" in capsys.readouterr().err
    code, out, err = facesvc("enroll", CELEBS / "img1.jpg", "--timeout", "0.001")
    assert (code, out) == (Exit.DEADLINE_EXCEEDED, None) and "DEADLINE_EXCEEDED" in err


def test_usage_errors_exit_2(facesvc: Run, tmp_path: Path) -> None:
    code, out, err = facesvc("enroll", tmp_path / "missing.jpg")
    assert (code, out) == (Exit.USAGE, None) and "missing.jpg" in err
    not_json = tmp_path / "embedding.json"
    not_json.write_text("values: 1, 2, 3")
    code, _, err = facesvc("verify", CELEBS / "img1.jpg", "--embedding", not_json)
    assert code == Exit.USAGE and "not JSON" in err
    not_embedding = tmp_path / "other.json"
    not_embedding.write_text('{"values": [1, 2]}')
    assert facesvc("verify", CELEBS / "img1.jpg", "--embedding", not_embedding)[0] == Exit.USAGE
    assert facesvc("identify", CELEBS / "img1.jpg", "--gallery", not_json)[0] == Exit.USAGE
    assert facesvc("frobnicate")[0] == Exit.USAGE
    assert facesvc("verify", CELEBS / "img1.jpg")[0] == Exit.USAGE  # --embedding is required


def test_a_usage_error_never_dials_the_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command reads and checks its inputs before it opens a channel: a typo costs no
    connection (and no channel closed within milliseconds of opening, which grpcio's
    connectivity thread can report as a traceback, grpc/grpc#18995). The listener stands in
    for the service and counts who dials it; `health` shows that it sees a client."""
    not_json = tmp_path / "embedding.json"
    not_json.write_text("values: 1, 2, 3")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        run = _runner(target, capsys)
        assert run("enroll", tmp_path / "missing.jpg")[0] == Exit.USAGE
        assert run("verify", CELEBS / "img1.jpg", "--embedding", not_json)[0] == Exit.USAGE
        assert run("identify", CELEBS / "img1.jpg", "--gallery", not_json)[0] == Exit.USAGE
        assert run("identify-faces", tmp_path / "missing.jpg", "--gallery", not_json)[0] == Exit.USAGE
        listener.settimeout(1.0)
        with pytest.raises(TimeoutError):
            listener.accept()
        # The same listener sees a command that does call.
        caller = threading.Thread(target=run, args=("health", "--timeout", "2"))
        caller.start()
        listener.settimeout(10.0)
        connection, _ = listener.accept()
        connection.close()
        caller.join()


def test_installed_tool_reads_stdin_and_environment(target: str) -> None:
    """The console script as a shell runs it: photo on stdin, target from FACESVC_TARGET,
    options after the command, JSON on stdout that parses."""
    env = os.environ | {"FACESVC_TARGET": target, "OPENCV_LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [_installed_tool(), "enroll", "-", "--face-selection", "largest", "--pretty"],
        input=(CELEBS / "couple.jpg").read_bytes(),
        capture_output=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["face"]["face_count"] == 2
    refused = subprocess.run(
        [_installed_tool(), "enroll", str(CELEBS / "couple.jpg")], capture_output=True, text=True, env=env
    )
    assert (refused.returncode, refused.stdout) == (Exit.MULTIPLE_FACES, "")
    assert "MULTIPLE_FACES" in refused.stderr and "face_count=2" in refused.stderr


# ---- presentation attacks --------------------------------------------------------------


def test_exit_codes_are_stable() -> None:
    """Scripts branch on these numbers: new ones are appended, none is renumbered."""
    assert [(code.name, code.value) for code in Exit] == [
        *[
            (name, value)
            for value, name in enumerate(
                [
                    "OK",
                    "NO_MATCH",
                    "USAGE",
                    "IMAGE_UNDECODABLE",
                    "IMAGE_TOO_SMALL",
                    "IMAGE_TOO_LARGE",
                    "NO_FACE",
                    "MULTIPLE_FACES",
                    "FACE_TOO_SMALL",
                    "LOW_QUALITY",
                    "LIVENESS_FAILED",
                    "EMBEDDING_INVALID",
                    "EMBEDDING_MODEL_MISMATCH",
                    "UNAVAILABLE",
                    "DEADLINE_EXCEEDED",
                    "AUTHENTICATION",
                    "REQUEST_TOO_LARGE",
                    "INTERNAL",
                    "OTHER",
                ]
            )
        ],
        ("PRESENTATION_ATTACK", 19),
        ("FACE_NOT_SCORABLE", 20),
        ("LIVENESS_SESSION_FAILED", 21),
        ("TEMPLATE_INVALID", 22),
        ("SEALING_UNAVAILABLE", 23),
    ]


def nuaa(kind: str, subject: str = "0001") -> list[Path]:
    """NUAA frames: kind "ClientRaw" (live webcam) or "ImposterRaw" (prints held up)."""
    frames = sorted((NUAA / kind / subject).glob("*.jpg"))
    assert frames, f"no NUAA frames in {NUAA / kind / subject}"
    return frames


@pytest.fixture(scope="module")
def kiosk_target() -> Iterator[str]:
    """A server with the stage's shipped defaults (ENFORCE for Verify and Identify, REPORT
    for Enroll); the shared test server only reports it (see conftest)."""
    settings = Settings(
        port=0,
        host="127.0.0.1",
        presentation_attack="enforce",
        presentation_attack_enroll="report",
        # Above the image floor (80), so a face between the two is one the stage cannot judge.
        presentation_attack_min_face_size=105,
    )
    engine = FaceEngine(settings)
    engine.load()
    face_server = start_server(settings, engine)
    try:
        yield f"127.0.0.1:{face_server.port}"
    finally:
        face_server.stop(None).wait()


@pytest.fixture
def kiosk(kiosk_target: str, capsys: pytest.CaptureFixture[str]) -> Run:
    return _runner(kiosk_target, capsys)


@pytest.fixture
def nuaa_file(kiosk: Run, tmp_path: Path) -> Path:
    """enroll's output for NUAA subject 0001's first live frame."""
    code, out, err = kiosk("enroll", nuaa("ClientRaw")[0], "--face-selection", "largest")
    assert code == Exit.OK, err
    path = tmp_path / "0001.json"
    path.write_text(json.dumps(out))
    return path


def test_a_print_exits_presentation_attack(
    kiosk: Run, facesvc: Run, kiosk_target: str, nuaa_file: Path, tmp_path: Path
) -> None:
    gallery = tmp_path / "gallery.json"
    gallery.write_text(json.dumps({"0001": json.loads(nuaa_file.read_text())}))
    for frame in nuaa("ImposterRaw")[:3]:
        code, out, err = kiosk("verify", frame, "--embedding", nuaa_file, "--face-selection", "largest")
        assert (code, out) == (Exit.PRESENTATION_ATTACK, None), err
        assert err.startswith("facesvc verify: PRESENTATION_ATTACK") and "live_score=" in err
        code, out, err = kiosk("identify", frame, "--gallery", gallery, "--face-selection", "largest")
        assert (code, out) == (Exit.PRESENTATION_ATTACK, None) and "PRESENTATION_ATTACK" in err
        # Asking for the stronger mode works wherever the server's default is weaker.
        code, _, err = facesvc(
            "enroll", frame, "--face-selection", "largest", "--presentation-attack", "enforce"
        )
        assert code == Exit.PRESENTATION_ATTACK and "PRESENTATION_ATTACK" in err
    refused = subprocess.run(
        [
            *(_installed_tool(), "--target", kiosk_target, "verify", str(nuaa("ImposterRaw")[0])),
            *("--embedding", str(nuaa_file), "--face-selection", "largest"),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"OPENCV_LOG_LEVEL": "ERROR"},
    )
    assert (refused.returncode, refused.stdout) == (Exit.PRESENTATION_ATTACK, "")


def _attack_check(out: dict[str, Any]) -> dict[str, Any]:
    (check,) = [c for c in out["liveness_checks"] if c["name"] == "presentation_attack"]
    return check


def test_json_output_carries_the_presentation_attack_check(kiosk: Run, nuaa_file: Path) -> None:
    code, out, _ = kiosk(
        "verify", nuaa("ClientRaw")[1], "--embedding", nuaa_file, "--face-selection", "largest"
    )
    assert (code, out["match"]) == (Exit.OK, True)
    live = _attack_check(out)
    assert live["passed"] and live["threshold"] <= live["value"] <= 1
    # Enroll only reports the stage by default: the print is enrolled, the check says what it is.
    code, out, _ = kiosk("enroll", nuaa("ImposterRaw")[0], "--face-selection", "largest")
    attack = _attack_check(out)
    assert code == Exit.OK and not attack["passed"] and attack["value"] < attack["threshold"] == 0.5
    code, out, _ = kiosk("health")
    assert code == Exit.OK
    assert out["presentation_attack"] == {
        "mode": "enforce",
        "enroll_mode": "report",
        "threshold": 0.5,
        "model": "MiniFASNetV2+MiniFASNetV1SE+signals",
        "min_face_size": 105.0,
        "relaxable": False,
    }


def test_a_face_under_the_stages_floor_exits_face_not_scorable(
    kiosk: Run, nuaa_file: Path, tmp_path: Path
) -> None:
    pixels = cv2.imread(str(nuaa("ClientRaw")[0]))
    assert pixels is not None
    small = tmp_path / "small.jpg"
    small.write_bytes(images.jpeg(cv2.resize(pixels, None, fx=0.62, fy=0.62)))  # a 90 px face
    code, out, err = kiosk("verify", small, "--embedding", nuaa_file, "--face-selection", "largest")
    assert (code, out) == (Exit.FACE_NOT_SCORABLE, None)
    assert "FACE_NOT_SCORABLE" in err and "cause=too_small" in err


def test_a_face_that_fills_the_frame_is_judged(kiosk: Run, nuaa_file: Path, tmp_path: Path) -> None:
    """Selfie framing: little more than the face, no 2.7x context; the stage judges it."""
    pixels = cv2.imread(str(nuaa("ClientRaw")[0]))
    assert pixels is not None
    close = tmp_path / "close.jpg"
    close.write_bytes(images.jpeg(pixels[100:360, 245:440]))
    code, out, err = kiosk("verify", close, "--embedding", nuaa_file, "--face-selection", "largest")
    assert code == Exit.OK, err
    assert _attack_check(out)["passed"]


def test_a_weaker_mode_than_the_servers_is_refused(kiosk: Run, nuaa_file: Path) -> None:
    attack = nuaa("ImposterRaw")[0]
    for mode in ("report", "off"):
        code, out, err = kiosk(
            "verify",
            attack,
            "--embedding",
            nuaa_file,
            "--face-selection",
            "largest",
            "--presentation-attack",
            mode,
        )
        assert (code, out) == (Exit.AUTHENTICATION, None)
        assert "PRESENTATION_ATTACK_RELAX_DENIED" in err and f"requested={mode}" in err
    assert kiosk("enroll", attack, "--presentation-attack", "sideways")[0] == Exit.USAGE


# ---- client/examples/attendance.py ------------------------------------------------------


@pytest.fixture
def sealing_target(engine: FaceEngine, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A server that seals templates (its key file, one key "k1"), sharing the loaded engine."""
    keys = tmp_path / "template-keys"
    keys.write_text(KeyRing.generate_line("k1") + "\n")
    keys.chmod(0o600)
    face_server = start_server(Settings(port=0, host="127.0.0.1", template_keys_file=keys), engine)
    yield f"127.0.0.1:{face_server.port}", keys
    face_server.stop(None).wait()


def test_attendance_example(sealing_target: tuple[str, Path], tmp_path: Path) -> None:
    """Enroll three people into SQLite (sealed templates), then one Identify per frame marks
    who came; after a key rotation `reseal` moves every row to the new key."""
    target, keys = sealing_target
    db = tmp_path / "office.db"

    def attendance(*args: str | Path) -> list[dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "--db", str(db), "--target", target, *map(str, args)],
            capture_output=True,
            text=True,
            env=os.environ | {"OPENCV_LOG_LEVEL": "ERROR"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    enrolled = attendance("enroll", "id00", CELEBS / "img1.jpg", CELEBS / "couple.jpg")
    assert [e["status"] for e in enrolled] == ["enrolled", "rejected"]
    attendance("enroll", "id01", CELEBS / "img13.jpg")
    attendance("enroll", "id02", CELEBS / "img16.jpg")

    frames = ["img2.jpg", "img14.jpg", "img4.jpg", "img18.jpg", "couple.jpg"]  # id00, id01, id00, id03, two
    marked = attendance("mark", *(CELEBS / f for f in frames))
    assert [(m["status"], m.get("employee")) for m in marked] == [
        ("marked", "id00"),
        ("marked", "id01"),
        ("already_marked", "id00"),
        ("unknown", None),
        ("rejected", None),
    ]
    assert marked[-1]["reason"] == "MULTIPLE_FACES"

    present = {row["employee"]: row["present"] for row in attendance("report")}
    assert present == {"id00": True, "id01": True, "id02": False}
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT model, key_id, embedding FROM templates").fetchall()
    assert len(rows) == 3
    for model, key_id, text in rows:
        stored = json.loads(text)
        assert model == stored["model"] == "SFace" and key_id == stored["key_id"] == "k1"
        assert "values" not in stored and len(base64.b64decode(stored["sealed"])) > 4 * 128

    keys.write_text(KeyRing.generate_line("k2") + "\n" + keys.read_text())  # k2 in front
    assert attendance("reseal") == [{"status": "resealed", "templates": 3, "key_id": "k2"}]
    with sqlite3.connect(db) as connection:
        assert {k for (k,) in connection.execute("SELECT key_id FROM templates")} == {"k2"}
    keys.write_text(keys.read_text().splitlines()[0] + "\n")  # k1 removed: the rows still open
    again = attendance("mark", CELEBS / "img2.jpg")
    assert [(m["status"], m.get("employee")) for m in again] == [("already_marked", "id00")]

    # A group photo: one IdentifyFaces call marks everyone found in it.
    groups = ROOT.parent / "shared" / "faces" / "groups"
    for who in ("friends_chandler", "friends_joey"):
        attendance("enroll", who, *sorted((groups / "enrol" / who).iterdir()))
    group = groups / "group" / "caglarsarikaya-face-recognition-group-photos__all (6).jpg"  # + ross
    marked = attendance("mark", "--group", group)
    assert sorted((m["status"], m.get("employee")) for m in marked) == [
        ("marked", "friends_chandler"),
        ("marked", "friends_joey"),
        ("unknown", None),
    ]
    again = attendance("mark", "--group", group)
    assert sorted(m["status"] for m in again) == ["already_marked", "already_marked", "unknown"]
    # Two frames of one person decided together in one Identify call (a kiosk's burst).
    burst = attendance("mark", "--burst", "2", CELEBS / "img2.jpg", CELEBS / "img4.jpg")
    assert [(m["status"], m.get("employee"), m.get("frames")) for m in burst] == [
        ("already_marked", "id00", 2)
    ]
