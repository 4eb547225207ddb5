"""`make eval`, presentation attacks: APCER per attack instrument and BPCER per source of
../shared/pad through the service's API, and what the stage would refuse of the
recognition sets' genuine photos.

ISO/IEC 30107-3 terms: APCER is the share of attack presentations accepted as live,
BPCER the share of live (bona fide) presentations refused by the stage, either as an
attack or as a face it cannot judge (FACE_NOT_SCORABLE). Every frame is sent to Verify
on a real server (port 0) with the stage enforced and the largest face chosen (a few
NUAA frames show a second person behind); video files are sampled as
`python -m facesvc.tools.calibrate_pad` samples them (frames evenly spaced, JPEG). A frame
refused before the stage (no face, image too small, ...) is listed apart and counts
neither way.

These are the development sources the shipped fusion was fitted on: the figures here are
in-sample. What it does on a source it was not fitted on is the leave-one-source-out
table (`python -m facesvc.tools.calibrate_pad --loso`, docs/PRESENTATION_ATTACK_SIGNALS.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from facesvc.config import Settings
from facesvc.engine import FaceEngine, FaceSelection
from facesvc.engine.pipeline.presentation_attack import AttackMode
from facesvc.errors import FaceNotScorableError, FaceServiceError, PresentationAttackError
from facesvc.tools.calibrate_pad import development_items, frames_of
from facesvc.tools.evaluate import serving
from facesvc.v1 import face_service_pb2 as pb

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STAGE_REASONS = {PresentationAttackError.reason, FaceNotScorableError.reason}
LIVE_FRAMES, ATTACK_FRAMES = 12, 40

#: Photos that are genuine people, but reproductions: what an Enroll under enforce refuses.
RECOGNITION_SETS: tuple[tuple[str, str], ...] = (
    ("celebs (press photos)", "faces/celebs/*.jpg"),
    ("yale (greyscale scans)", "faces/yale/*.png"),
    ("orl (92x112 crops)", "faces/orl/*/*.png"),
    ("lfw-devtrain (press photos)", "lfw-devtrain/lfw/*/*.jpg"),
)


@dataclass
class Outcome:
    live: int = 0
    stage: Counter[str] | None = None
    before: Counter[str] | None = None

    @property
    def judged(self) -> int:
        return self.live + sum((self.stage or Counter()).values())


def run(engine: FaceEngine, files: list[Path], mode: AttackMode) -> Outcome:
    outcome = Outcome(stage=Counter(), before=Counter())
    assert outcome.stage is not None and outcome.before is not None
    for path in files:
        try:
            engine.analyse(path.read_bytes(), FaceSelection.LARGEST, None, mode)
            outcome.live += 1
        except FaceServiceError as error:
            (outcome.stage if error.reason in STAGE_REASONS else outcome.before)[error.reason] += 1
    return outcome


def _counts(counter: Counter[str] | None) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in (counter or Counter()).most_common()) or "none"


@dataclass
class Tally:
    """Outcomes of one (source, instrument)."""

    accepted: int = 0
    stage: Counter[str] = field(default_factory=Counter)
    before: Counter[str] = field(default_factory=Counter)

    @property
    def judged(self) -> int:
        return self.accepted + sum(self.stage.values())


def _jpeg(image: object) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])  # type: ignore[call-overload]
    assert ok
    return bytes(encoded.tobytes())


def pad_frames(shared: Path) -> Iterable[tuple[str, str, bytes]]:
    """(source, instrument, image bytes) for every frame of ../shared/pad: stills as they
    are, video frames sampled and JPEG-encoded as a camera client would send them."""
    for item in development_items(shared):
        if item.path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            yield item.source, item.instrument, item.path.read_bytes()
            continue
        for _index, frame in frames_of(item.path, LIVE_FRAMES if item.live else ATTACK_FRAMES):
            yield item.source, item.instrument, _jpeg(frame)


def verify_all(stub: object, shared: Path) -> dict[tuple[str, str], Tally]:
    """Every frame through Verify (stage enforced): accepted, refused by the stage (reason,
    cause), or refused before it."""
    verify = stub.Verify  # type: ignore[attr-defined]
    stored: pb.Embedding | None = None
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for source, instrument, image in pad_frames(shared):
        if stored is None:
            stored = stub.Enroll(  # type: ignore[attr-defined]
                pb.EnrollRequest(image=image, face_selection=pb.FACE_SELECTION_LARGEST)
            ).embedding
        tally = tallies[(source, instrument)]
        try:
            verify(
                pb.VerifyRequest(
                    image=image, stored_embeddings=[stored], face_selection=pb.FACE_SELECTION_LARGEST
                ),
                timeout=60,
            )
            tally.accepted += 1
        except grpc.RpcError as error:
            reason = _reason(error)
            (tally.stage if reason.split(":")[0] in STAGE_REASONS else tally.before)[reason] += 1
    return tallies


def _reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason (with its cause, for FACE_NOT_SCORABLE), else the status code."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            cause = info.metadata.get("cause")
            return f"{info.reason}:{cause}" if cause else info.reason
    return str(error.code())  # type: ignore[attr-defined,unused-ignore]


def _rate(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "-"


def print_pad_table(tallies: dict[tuple[str, str], Tally]) -> None:
    print(
        "| source | live refused (BPCER, any PAD reason) | APCER per attack instrument | refused by the stage | refused before it |"
    )
    print("|---|---|---|---|---|")
    for source in sorted({s for s, _ in tallies}):
        live = tallies.get((source, "live"), Tally())
        attacks = {i: t for (s, i), t in tallies.items() if s == source and i != "live"}
        apcer = ", ".join(f"{i} {_rate(t.accepted, t.judged)}" for i, t in sorted(attacks.items()))
        stage = Counter[str]()
        before = Counter[str]()
        for (s, _i), t in tallies.items():
            if s == source:
                stage.update(t.stage)
                before.update(t.before)
        bpcer = _rate(sum(live.stage.values()), live.judged)
        print(f"| {source} | {bpcer} | {apcer} | {_counts(stage)} | {_counts(before)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--pad-only", action="store_true", help="skip the recognition sets")
    args = parser.parse_args(argv)

    # The crops are 90-180 px and some phone videos 144x176: let them in, so that the stage
    # (not the image floor) decides.
    pad_settings = Settings(
        min_image_size=64, min_face_size=40, max_image_size=5000, presentation_attack="enforce"
    )
    with serving(pad_settings) as stub:
        info = stub.Health(pb.HealthRequest()).presentation_attack
        print(
            f"presentation-attack stage {info.model}, live score threshold {info.threshold:g}, through Verify"
        )
        print()
        print_pad_table(verify_all(stub, args.shared))
        sys.stdout.flush()
    if args.pad_only:
        return 0
    print()
    print("Enroll's refusals on the recognition sets (default settings): the stage off or only")
    print("reporting (Enroll's default) against the stage enforced (a kiosk that enrolls live):")
    print()
    print("| set | images | refused, stage off or report | refused, stage enforced | of which by the stage |")
    print("|---|---|---|---|---|")
    engine = FaceEngine(Settings(face_selection="central"))
    engine.load()
    for name, pattern in RECOGNITION_SETS:
        files = sorted(args.shared.glob(pattern))
        if not files:
            continue
        off = run(engine, files, AttackMode.OFF)
        on = run(engine, files, AttackMode.ENFORCE)
        off_refused = len(files) - off.live
        on_refused = len(files) - on.live
        print(
            f"| {name} | {len(files)} | {off_refused} ({100 * off_refused / len(files):.1f}%) "
            f"| {on_refused} ({100 * on_refused / len(files):.1f}%) | {_counts(on.stage)} |"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
