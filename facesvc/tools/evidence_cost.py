"""What the evidence rule (facesvc.engine.session.evidence) costs a person who follows the
prompts: blink sessions of real frames, with the rule and without it.

    python -m facesvc.tools.evidence_cost [--data ../shared/liveness]

The person is made of each labelled clip's frames around its labelled blinks (six
before, six after each, one blink after another, at the clip's pace): a person blinking
when asked. Each session runs in this process (the presentation-attack stage enforced)
with 2 and 3 blink prompts; printed: frames and capture seconds to the pass, with the
default rule and with none (1 frame, 0 s). Nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.session.session import LivenessSessions, SessionTemplates

CLIPS = ("mahie_test_1", "mahie_test_4_low_fps", "mahie_test_5_low_fps", "soniya_test_3")


def blinking_person(clip: Path, limit: int = 300, around: int = 6) -> tuple[list[bytes], float]:
    labels = [line.strip() == "1" for line in clip.with_suffix(".eyes_closed.csv").read_text().split()]
    wanted: list[int] = []
    start = None
    for index, closed in enumerate([*labels, False]):
        if closed and start is None:
            start = index
        elif not closed and start is not None:
            if start >= around:
                wanted.extend(range(start - around, index + around))
            start = None
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames: dict[int, bytes] = {}
    index = 0
    while index <= max(wanted[:limit]):
        ok, frame = capture.read()
        if not ok:
            break
        frames[index] = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        index += 1
    capture.release()
    return [frames[i] for i in wanted[:limit] if i in frames], fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/liveness"))
    args = parser.parse_args()
    engine = FaceEngine(Settings(presentation_attack="enforce"))
    engine.load()
    defaults = Settings()
    print("clip | fps | prompts | no rule: frames, s | default rule: frames, s")
    for name in CLIPS:
        frames, fps = blinking_person(args.data / "blink" / f"{name}.avi")
        for prompts in (2, 3):
            row = []
            for min_frames, min_seconds in (
                (1, 0.0),
                (defaults.liveness_min_live_frames, defaults.liveness_min_live_seconds),
            ):
                settings = Settings(
                    presentation_attack="enforce",
                    liveness_challenges="blink",
                    liveness_allow_replayable_prompts=True,
                    liveness_prompts=prompts,
                    liveness_prompt_seconds=10,
                    liveness_min_live_frames=min_frames,
                    liveness_min_live_seconds=min_seconds,
                )
                session = LivenessSessions(engine, settings).open(SessionTemplates(), None, min(fps, 60.0))
                session.start()
                result = None
                for index, frame in enumerate(frames):
                    result = session.frame(frame, index / fps).result
                    if result is not None:
                        break
                result = result or session.stream_ended()
                outcome = (
                    f"{result.frames}, {result.frames / fps:.2f}" if result.passed else str(result.failure)
                )
                row.append(outcome)
            print(f"{name} | {fps:.1f} | {prompts} | {row[0]} | {row[1]}", flush=True)


if __name__ == "__main__":
    main()
