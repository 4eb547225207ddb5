"""`make eval`, presentation attacks: APCER and BPCER per set at the serving threshold,
and what the stage would refuse of the recognition sets' genuine photos.

ISO/IEC 30107-3 terms: APCER is the share of attack presentations accepted as live,
BPCER the share of live (bona fide) presentations refused by the stage, either as an
attack or as a face it cannot judge (FACE_NOT_SCORABLE). Every image goes through the
engine the service runs, with the stage enforced and the largest face chosen (a few
NUAA frames show a second person behind); an image refused before the stage (no face,
image too small, ...) is listed apart and counts neither way.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from facesvc.config import Settings
from facesvc.engine import FaceEngine, FaceSelection
from facesvc.engine.pipeline.presentation_attack import AttackMode
from facesvc.errors import FaceNotScorableError, FaceServiceError, PresentationAttackError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STAGE_REASONS = {PresentationAttackError.reason, FaceNotScorableError.reason}

#: name, folder glob under shared/, live (True) or attack (False), note
PAD_SETS: tuple[tuple[str, str, bool, str], ...] = (
    ("NUAA live, subjects 1-7", "pad/nuaa/ClientRaw/*/*.jpg", True, "640x480 webcam"),
    ("NUAA print attacks, subjects 1-7", "pad/nuaa/ImposterRaw/*/*.jpg", False, "flat, bent, moved prints"),
    ("screen crops, live", "pad/screen-crops/real/*.png", True, "tight crops, no context"),
    ("screen crops, replay", "pad/screen-crops/fake/*.png", False, "tight crops, no context"),
    ("Silent-Face samples, live", "pad/silentface/image_T*.jpg", True, "T2 backlit, 2160x1617"),
    ("Silent-Face samples, attacks", "pad/silentface/image_F*.jpg", False, "poster, tablet"),
)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    args = parser.parse_args(argv)

    # The crops are 90-180 px: let them in, so that the stage (not the size floor) decides.
    pad_engine = FaceEngine(Settings(min_image_size=64, min_face_size=40, max_image_size=5000))
    pad_engine.load()
    threshold = pad_engine.settings.presentation_attack_threshold
    print(f"presentation-attack stage {pad_engine.info().attack_model}, live score threshold {threshold:g}")
    print()
    print(
        "| set | images | APCER (attacks accepted) | BPCER (live refused) | refused by the stage | refused before it |"
    )
    print("|---|---|---|---|---|---|")
    for name, pattern, live, note in PAD_SETS:
        files = sorted(args.shared.glob(pattern))
        o = run(pad_engine, files, AttackMode.ENFORCE)
        refused = sum((o.stage or Counter()).values())
        judged = max(o.judged, 1)
        apcer = "" if live else f"{o.live}/{o.judged} ({100 * o.live / judged:.2f}%)"
        bpcer = f"{refused}/{o.judged} ({100 * refused / judged:.2f}%)" if live else ""
        print(
            f"| {name} ({note}) | {len(files)} | {apcer} | {bpcer} | {_counts(o.stage)} | {_counts(o.before)} |"
        )
        sys.stdout.flush()

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
