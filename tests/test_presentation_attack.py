"""The presentation-attack stage against real servers, real prints and real screens.

Rates are asserted over whole shared folders (every third NUAA frame of subjects
0001-0007, to keep the suite short), with floors below what `make eval` measured on
every frame: NUAA live frames refused 0.4% at the default 0.5, print attacks accepted
0 of 809 (the highest attack scored 0.29).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.pipeline.attack_fusion import FUSION_FILE, FUSION_SHA256, load_fusion
from facesvc.engine.pipeline.attack_signals import SIGNAL_FRAME_PX, normalise, reach_of
from facesvc.engine.pipeline.attack_signals.frequency import HighFrequencySignal, SpectralPeakSignal
from facesvc.engine.pipeline.attack_signals.specular import GlareSignal
from facesvc.engine.pipeline.presentation_attack import (
    NETWORKS,
    WEIGHTS_DIR,
    AttackMode,
    PresentationAttackDetector,
)
from facesvc.engine.types import Box
from facesvc.errors import FaceServiceError, ModelUnavailableError
from facesvc.rpc.server import FaceServer
from facesvc.tools.calibrate_pad import frames_of
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import (
    CELEBS,
    PAD,
    log_lines,
    photo,
    rejection,
    serving_ports,
    spawn_server,
    start_server,
)

LIVE = sorted((PAD / "nuaa" / "ClientRaw").glob("*/*.jpg"))[::3]
PRINTS = sorted((PAD / "nuaa" / "ImposterRaw").glob("*/*.jpg"))[::3]
SCREENS = sorted((PAD / "screen-crops" / "fake").glob("*.png"))
SILENTFACE = PAD / "silentface"
REFERENCE = PAD.parent / "models" / "minifasnet" / "reference_scores.tsv"

ENFORCE = pb.PRESENTATION_ATTACK_MODE_ENFORCE
REPORT = pb.PRESENTATION_ATTACK_MODE_REPORT
OFF = pb.PRESENTATION_ATTACK_MODE_OFF
LARGEST = pb.FACE_SELECTION_LARGEST  # a few NUAA frames show a second person behind
#: Attacks accepted, at most (set from make eval's in-sample figures, see the tests below).
MSU_CEILING, REPLAY_CEILING = 0.7, 0.3


@pytest.fixture(scope="module")
def kiosk(engine: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    """A server with the stage as shipped: Verify/Identify enforce, Enroll reports."""
    settings = Settings(
        port=0, host="127.0.0.1", presentation_attack="enforce", presentation_attack_enroll="report"
    )
    yield from _serve(settings, engine)


def _serve(settings: Settings, engine: FaceEngine) -> Iterator[pb_grpc.FaceServiceStub]:
    face_server: FaceServer = start_server(settings, engine.sharing_models(settings))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
            yield pb_grpc.FaceServiceStub(channel)
    finally:
        face_server.stop(None).wait()


def _attack_check(checks: object) -> pb.LivenessCheck | None:
    return next((c for c in checks if c.name == "presentation_attack"), None)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def reference(kiosk: pb_grpc.FaceServiceStub) -> pb.Embedding:
    """A NUAA live frame enrolled: the stored template the kiosk checks people against."""
    return kiosk.Enroll(pb.EnrollRequest(image=LIVE[0].read_bytes(), face_selection=LARGEST)).embedding


def test_the_networks_reproduce_the_original_pipelines_scores() -> None:
    detector = PresentationAttackDetector(0.5, 1, 1)
    with REFERENCE.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 40
    for row in rows:
        image = cv2.imread(str(PAD.parent / row["file"]))
        box = Box(*(float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")))
        assert detector.live_score(image, box) == pytest.approx(float(row["score_real"]), abs=1e-3), row[
            "file"
        ]


def test_scaling_only_around_the_face_gives_the_whole_frames_signal_values(engine: FaceEngine) -> None:
    """The stage scales only the part of a large frame its signals look at (a cost cut): on
    every photo over SIGNAL_FRAME_PX in the celebs folder and pad/screens' MSU folder
    (phones' photos of all sizes), each face-patch signal reads exactly what the whole
    frame gives (colour texture is left out: the shipped fusion carries no references)."""
    signals = [
        HighFrequencySignal(),
        SpectralPeakSignal(),
        GlareSignal(),
    ]
    reach = reach_of(signals)
    assert reach is not None
    files = sorted(CELEBS.glob("*.jpg")) + sorted((PAD / "screens" / "msu-mfsd-train").rglob("*.jpg"))
    compared = cropped = 0
    for path in files:
        image = cv2.imread(str(path))
        if image is None or max(image.shape[:2]) <= SIGNAL_FRAME_PX:
            continue
        try:
            box = engine.analyse(path.read_bytes(), presentation_attack=AttackMode.OFF).detection.box
        except FaceServiceError:  # no face to compare
            continue
        whole, whole_box = normalise(image, box)
        part, part_box = normalise(image, box, reach)
        cropped += part.size < whole.size
        for signal in signals:
            assert signal.score(part, part_box) == pytest.approx(signal.score(whole, whole_box), abs=1e-9), (
                path.name,
                signal.name,
            )
        compared += 1
    assert compared >= 30 and cropped >= compared // 2, (compared, cropped)


def test_live_frames_pass_verify_under_enforce(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding
) -> None:
    outcomes: Counter[str] = Counter()
    for frame in LIVE:
        try:
            response = kiosk.Verify(
                pb.VerifyRequest(
                    image=frame.read_bytes(), stored_embeddings=[reference], face_selection=LARGEST
                )
            )
        except grpc.RpcError as error:
            outcomes[rejection(error)[1]] += 1
            continue
        check = _attack_check(response.liveness_checks)
        assert check is not None and check.passed and check.value >= check.threshold
        outcomes["live"] += 1
    assert len(LIVE) >= 180
    assert outcomes["live"] >= 0.98 * len(LIVE), outcomes  # measured 99.6% on every frame


@pytest.mark.parametrize("rpc", ["Verify", "Identify"])
def test_printed_photos_are_refused_as_presentation_attacks(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding, rpc: str
) -> None:
    outcomes: Counter[str] = Counter()
    frames = PRINTS if rpc == "Verify" else PRINTS[::4]
    for frame in frames:
        image = frame.read_bytes()
        try:
            if rpc == "Verify":
                kiosk.Verify(
                    pb.VerifyRequest(image=image, stored_embeddings=[reference], face_selection=LARGEST)
                )
            else:
                candidate = pb.Candidate(id="0001", embedding=reference)
                kiosk.Identify(
                    pb.IdentifyRequest(image=image, candidates=[candidate], face_selection=LARGEST)
                )
        except grpc.RpcError as error:
            code, reason, metadata = rejection(error)
            outcomes[reason] += 1
            if reason == "PRESENTATION_ATTACK":
                assert code is grpc.StatusCode.INVALID_ARGUMENT
                assert float(metadata["live_score"]) < float(metadata["threshold"]) == 0.5
                assert metadata["model"] == "MiniFASNetV2+MiniFASNetV1SE+signals"
            continue
        outcomes["accepted"] += 1
    assert outcomes["accepted"] == 0, outcomes  # 0 of 809 on every frame
    assert outcomes["PRESENTATION_ATTACK"] >= 0.95 * len(frames), outcomes


def test_screen_and_poster_attacks_with_context_are_refused(kiosk: pb_grpc.FaceServiceStub) -> None:
    reasons = {}
    for name in ("image_F1.jpg", "image_F2.jpg", "image_T1.jpg"):  # poster, tablet, live
        try:
            kiosk.Enroll(
                pb.EnrollRequest(image=(SILENTFACE / name).read_bytes(), presentation_attack=ENFORCE)
            )
            reasons[name] = "live"
        except grpc.RpcError as error:
            reasons[name] = rejection(error)[1]
    assert reasons == {
        "image_F1.jpg": "PRESENTATION_ATTACK",
        "image_F2.jpg": "PRESENTATION_ATTACK",
        "image_T1.jpg": "live",
    }


def test_tight_screen_crops_are_never_passed_as_live(engine: FaceEngine) -> None:
    """The screen-replay crops show no context around the face. The stage used to refuse
    them as FACE_NOT_SCORABLE (too close); it now judges every framing (issue 19), and
    refuses them all the same: as attacks, or as too small under its 80 px floor."""
    settings = Settings(
        port=0, host="127.0.0.1", presentation_attack="enforce", min_image_size=64, min_face_size=40
    )
    outcomes: Counter[str] = Counter()
    for stub in _serve(settings, engine):
        for crop in SCREENS[::3]:
            try:
                stub.Verify(
                    pb.VerifyRequest(image=crop.read_bytes(), stored_embeddings=[_any_embedding(stub)])
                )
                outcomes["accepted"] += 1
            except grpc.RpcError as error:
                _code, reason, metadata = rejection(error)
                outcomes[reason] += 1
                if reason == "FACE_NOT_SCORABLE":
                    assert metadata["cause"] in {"too_small", "cut_off"}
    assert outcomes["accepted"] == 0, outcomes
    assert outcomes["PRESENTATION_ATTACK"] + outcomes["FACE_NOT_SCORABLE"] >= 0.9 * len(SCREENS[::3]), (
        outcomes
    )


_EMBEDDING: list[pb.Embedding] = []


def _any_embedding(stub: pb_grpc.FaceServiceStub) -> pb.Embedding:
    if not _EMBEDDING:
        _EMBEDDING.append(stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg"))).embedding)
    return _EMBEDDING[0]


def test_report_mode_returns_the_check_and_refuses_nothing(kiosk: pb_grpc.FaceServiceStub) -> None:
    # Enroll's default is REPORT: a print enrolls, with the verdict attached.
    for frame in PRINTS[:10]:
        response = kiosk.Enroll(pb.EnrollRequest(image=frame.read_bytes(), face_selection=LARGEST))
        check = _attack_check(response.liveness_checks)
        assert check is not None and not check.passed and check.value < check.threshold
        assert check.detail == "looks like a print or a screen"


def test_enroll_from_press_photos_stays_possible_by_default(kiosk: pb_grpc.FaceServiceStub) -> None:
    enrolled = flagged = 0
    names = [line.split("\t")[0] for line in (CELEBS / "IDENTITIES.tsv").read_text().splitlines() if line]
    for name in names:
        try:
            response = kiosk.Enroll(pb.EnrollRequest(image=photo(name)))
        except grpc.RpcError as error:
            assert rejection(error)[1] in {"IMAGE_TOO_LARGE", "MULTIPLE_FACES"}, name
            continue
        enrolled += 1
        check = _attack_check(response.liveness_checks)
        assert check is not None
        flagged += not check.passed
    assert enrolled >= len(names) - 4
    assert 0 < flagged < 0.2 * enrolled  # measured: 5 of 61 press photos score below 0.5


def test_a_caller_may_strengthen_but_not_weaken_the_default(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        kiosk.Enroll(
            pb.EnrollRequest(
                image=PRINTS[0].read_bytes(), face_selection=LARGEST, presentation_attack=ENFORCE
            )
        )
    assert rejection(refused.value)[1] == "PRESENTATION_ATTACK"
    for mode in (REPORT, OFF):
        with pytest.raises(grpc.RpcError) as denied:
            kiosk.Verify(
                pb.VerifyRequest(
                    image=PRINTS[0].read_bytes(), stored_embeddings=[reference], presentation_attack=mode
                )
            )
        code, reason, metadata = rejection(denied.value)
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PRESENTATION_ATTACK_RELAX_DENIED")
        assert metadata["server_mode"] == "enforce"


def test_only_an_importers_key_may_relax_the_stage(engine: FaceEngine, reference: pb.Embedding) -> None:
    settings = Settings(
        port=0,
        host="127.0.0.1",
        presentation_attack="enforce",
        api_keys="kiosk,importer",  # type: ignore[arg-type]
        presentation_attack_relax_keys="importer",  # type: ignore[arg-type]
    )
    request = pb.VerifyRequest(
        image=PRINTS[0].read_bytes(), stored_embeddings=[reference], presentation_attack=OFF
    )
    for stub in _serve(settings, engine):
        response = stub.Verify(request, metadata=[("x-api-key", "importer")])
        assert _attack_check(response.liveness_checks) is None  # OFF: not even scored
        with pytest.raises(grpc.RpcError) as denied:
            stub.Verify(request, metadata=[("x-api-key", "kiosk")])
        assert rejection(denied.value)[1] == "PRESENTATION_ATTACK_RELAX_DENIED"
        health = stub.Health(pb.HealthRequest(), metadata=[("x-api-key", "kiosk")])
        assert health.presentation_attack.relaxable


def test_off_mode_skips_the_model(engine: FaceEngine) -> None:
    settings = Settings(port=0, host="127.0.0.1", presentation_attack="off", presentation_attack_enroll="off")
    off_engine = FaceEngine(settings)
    off_engine.load()
    assert off_engine._attack is None  # not even loaded
    face_server = start_server(settings, off_engine)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{face_server.port}") as channel:
            stub = pb_grpc.FaceServiceStub(channel)
            response = stub.Enroll(pb.EnrollRequest(image=PRINTS[0].read_bytes(), face_selection=LARGEST))
            assert _attack_check(response.liveness_checks) is None
            assert stub.Health(pb.HealthRequest()).presentation_attack.model == ""
            with pytest.raises(grpc.RpcError) as unavailable:
                stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg"), presentation_attack=ENFORCE))
            assert rejection(unavailable.value)[:2] == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "PRESENTATION_ATTACK_UNAVAILABLE",
            )
    finally:
        face_server.stop(None).wait()


def test_health_describes_the_stage(kiosk: pb_grpc.FaceServiceStub) -> None:
    info = kiosk.Health(pb.HealthRequest()).presentation_attack
    assert info.mode == ENFORCE and info.enroll_mode == REPORT
    assert info.threshold == pytest.approx(0.5) and info.min_face_size == 80
    assert info.model == "MiniFASNetV2+MiniFASNetV1SE+signals" and not info.relaxable


def test_attacks_are_logged_as_suspicious_without_the_image(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="facesvc.security"), pytest.raises(grpc.RpcError):
        kiosk.Verify(pb.VerifyRequest(image=PRINTS[1].read_bytes(), stored_embeddings=[reference]))
    records = [r for r in caplog.records if getattr(r, "reason", None) == "PRESENTATION_ATTACK"]
    assert len(records) == 1
    assert set(records[0].details) == {"live_score", "threshold", "model"}  # type: ignore[attr-defined]


def test_the_default_server_refuses_a_print_at_verify(process: list[subprocess.Popen[str]]) -> None:
    """server.py with no presentation-attack setting at all: Verify enforces it."""
    proc = spawn_server(process, FACESVC_PRESENTATION_ATTACK="")  # "": unset
    port, _ = serving_ports(proc)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        assert Settings.model_fields["presentation_attack"].default == "enforce"
        stored = stub.Enroll(pb.EnrollRequest(image=LIVE[0].read_bytes(), face_selection=LARGEST)).embedding
        with pytest.raises(grpc.RpcError) as refused:
            stub.Verify(pb.VerifyRequest(image=PRINTS[2].read_bytes(), stored_embeddings=[stored]))
        assert rejection(refused.value)[1] == "PRESENTATION_ATTACK"


def test_a_corrupted_weights_file_stops_the_service_at_start(
    tmp_path: Path, process: list[subprocess.Popen[str]]
) -> None:
    name, digest, _ = NETWORKS[0]
    corrupted = tmp_path / name
    shutil.copyfile(WEIGHTS_DIR / name, corrupted)
    with corrupted.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    proc = spawn_server(process, FACESVC_WEIGHTS_DIR=str(tmp_path))
    lines = list(log_lines(proc, "serving", deadline=time.monotonic() + 120))
    assert proc.wait(timeout=60) != 0
    text = " ".join(str(entry) for entry in lines)
    assert str(corrupted) in text and digest in text


# ---- the fused stage across sources (issue 19) ---------------------------------------------

SCREENS_DIR = PAD / "screens"
SELFIES = sorted((SCREENS_DIR / "trainingdata-antispoof" / "live").glob("*/live_selfie.jpg"))
MSU_LIVE = sorted((SCREENS_DIR / "msu-mfsd-train" / "live").glob("*.jpg"))
MSU_ATTACKS = sorted((SCREENS_DIR / "msu-mfsd-train" / "attack").glob("*.jpg"))
REPLAYS = sorted((SCREENS_DIR / "trainingdata-antispoof" / "attack").glob("*/replay_video.*")) + sorted(
    (SCREENS_DIR / "wolf-huo" / "attack").glob("*.mp4")
)


def _verify_outcomes(
    stub: pb_grpc.FaceServiceStub, reference: pb.Embedding, images: list[bytes]
) -> Counter[str]:
    """'accepted', or the refusal's reason (with the cause for FACE_NOT_SCORABLE)."""
    outcomes: Counter[str] = Counter()
    for image in images:
        try:
            response = stub.Verify(
                pb.VerifyRequest(image=image, stored_embeddings=[reference], face_selection=LARGEST)
            )
        except grpc.RpcError as error:
            _code, reason, metadata = rejection(error)
            outcomes[f"{reason}:{metadata['cause']}" if "cause" in metadata else reason] += 1
            continue
        names = {check.name for check in response.liveness_checks}
        assert {
            "presentation_attack",
            "presentation_attack.minifasnet",
            "presentation_attack.spectral_peaks",
        } <= names
        outcomes["accepted"] += 1
    return outcomes


def _video_frames(paths: list[Path], per_file: int) -> list[bytes]:
    frames = []
    for path in paths:
        for _index, frame in frames_of(path, per_file):
            ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            assert ok
            frames.append(encoded.tobytes())
    return frames


def _stage_refusals(outcomes: Counter[str]) -> int:
    return sum(
        n for key, n in outcomes.items() if key.split(":")[0] in {"PRESENTATION_ATTACK", "FACE_NOT_SCORABLE"}
    )


def test_selfie_framed_live_faces_are_judged_not_refused_as_unscorable(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding
) -> None:
    """Phone selfies (the face fills much of the frame) and MSU-MFSD's close live captures:
    every one is judged (none FACE_NOT_SCORABLE); refused as an attack: measured 0 of 36.
    The fusion was fitted with these sources in: held out, trainingdata's live frames were
    refused 3% as attacks (plus 9% under the 80 px floor), see the docs' LOSO table."""
    assert len(SELFIES) >= 20 and len(MSU_LIVE) == 15
    outcomes = _verify_outcomes(kiosk, reference, [p.read_bytes() for p in SELFIES + MSU_LIVE])
    assert not [key for key in outcomes if key.startswith("FACE_NOT_SCORABLE")], outcomes
    judged = outcomes["accepted"] + outcomes["PRESENTATION_ATTACK"]
    assert judged >= len(SELFIES) + len(MSU_LIVE) - 2, outcomes  # a face found in all but a few
    assert outcomes["PRESENTATION_ATTACK"] <= 0.03 * judged, outcomes


def test_screen_and_print_attacks_from_other_sources_are_mostly_refused(
    kiosk: pb_grpc.FaceServiceStub, reference: pb.Embedding
) -> None:
    """MSU-MFSD's close-up iPad/iPhone replays and prints, phone-on-phone replays filmed by a
    third phone, and a screen replay with moire: accepted at most a ceiling over what was
    measured (MSU-MFSD 28 of 45, the replays' frames 10 of 48). These are not the issue's
    target (5%): the stage misses most close-up prints and iPhone replays. In-sample: the
    fusion was fitted on these sources; held out it does no better (the docs' LOSO table)."""
    msu = _verify_outcomes(kiosk, reference, [p.read_bytes() for p in MSU_ATTACKS])
    replays = _verify_outcomes(kiosk, reference, _video_frames(REPLAYS, 10))
    msu_judged = msu["accepted"] + _stage_refusals(msu)
    replay_judged = replays["accepted"] + _stage_refusals(replays)
    assert msu_judged >= 40 and replay_judged >= 40, (msu, replays)
    assert msu["accepted"] <= MSU_CEILING * msu_judged, msu
    assert replays["accepted"] <= REPLAY_CEILING * replay_judged, replays


def test_the_fusion_weights_are_pinned_and_load_offline(tmp_path: Path) -> None:
    """The shipped fusion is package data, read from the installed package (no network),
    and a changed byte stops the stage from loading."""
    assert hashlib.sha256(FUSION_FILE.read_bytes()).hexdigest() == FUSION_SHA256
    assert "models/attack_fusion/*" in (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    fusion = load_fusion()
    assert fusion.features == ("minifasnet", "spectral_peaks") and fusion.framing == "clamped"
    assert len(fusion.weights) == 2 and fusion.weights[0] > 0 > fusion.weights[1]  # live up, peaks down
    changed = tmp_path / "fusion.json"
    changed.write_text(FUSION_FILE.read_text().replace('"bias": ', '"bias": 1', 1))
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        load_fusion(changed)
    with pytest.raises(ModelUnavailableError, match="missing"):
        load_fusion(tmp_path / "absent.json")
