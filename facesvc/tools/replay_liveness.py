"""Play real clips as an attacker's virtual camera would, through CheckLiveness, and count
the sessions that pass.

    python -m facesvc.tools.replay_liveness [--offsets 6] [--challenges blink] [--clips ...]

Each clip is looped (a virtual camera or a phone on repeat plays it again and again),
started at `--offsets` evenly spaced points, at its own pace thinned to about 15 fps,
frames scaled to at most 640 px and sent as JPEG, ignoring the prompts. A real server
(in this process, the presentation-attack stage enforced as at a kiosk) answers; the
tool prints, per clip, the sessions that passed and the failure reasons. The clips are
research data (../shared/liveness, ../shared/pad/screens): read, never copied or kept.
Figures: docs/LIVENESS.md, "Pre-recorded video".
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Iterator
from pathlib import Path

import cv2

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.rpc.server import create_server
from facesvc_client import FaceClient, FaceServiceError, LivenessFrame

SHARED = Path("../shared")
#: (name, path) of every clip a default run plays: natural blinkers, the head-turn clip,
#: live selfie videos and their phone and screen replays.
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".3gp")
TARGET_FPS = 15.0
MAX_SIDE = 640


def default_clips(shared: Path) -> list[Path]:
    clips = sorted((shared / "liveness" / "blink").glob("*.avi"))
    clips.append(shared / "liveness" / "head-turn" / "head_turns.mp4")
    screens = shared / "pad" / "screens"
    clips += sorted(p for p in screens.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return clips


def read_clip(path: Path) -> tuple[list[bytes], float]:
    """The clip's frames as JPEG, thinned to about TARGET_FPS, and that frame rate."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, round(fps / TARGET_FPS))
    frames: list[bytes] = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            scale = MAX_SIDE / max(frame.shape[:2])
            if scale < 1:
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
        index += 1
    capture.release()
    return frames, fps / step


def looped(frames: list[bytes], rate: float, start: int) -> Iterator[LivenessFrame]:
    """The clip from `start`, round and round (the session ends it)."""
    for count in range(100_000):
        yield LivenessFrame(frames[(start + count) % len(frames)], count / rate)


def replay(client: FaceClient, path: Path, offsets: int) -> list[str]:
    """One session per offset: "PASSED" or the failure reason."""
    frames, rate = read_clip(path)
    outcomes = []
    for offset in range(offsets):
        start = offset * len(frames) // offsets
        rate_sent = min(max(rate, 5.0), 60.0)
        try:
            result = client.check_liveness(looped(frames, rate_sent, start), frame_rate=rate_sent)
        except FaceServiceError as error:  # a refusal (a frame too small, ...): no pass either
            outcomes.append(type(error).__name__)
            continue
        outcomes.append("PASSED" if result.passed else str(result.failure))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--offsets", type=int, default=6)
    parser.add_argument("--challenges", default="blink,turn_left,turn_right")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--clips", nargs="*", type=Path, help="clips to play (default: every real clip)")
    args = parser.parse_args()
    settings = Settings(
        port=0,
        host="127.0.0.1",
        presentation_attack="enforce",
        liveness_challenges=args.challenges,
        liveness_prompts=args.prompts,
        liveness_allow_replayable_prompts=True,
        liveness_failure_threshold=1_000_000,
    )
    engine = FaceEngine(settings)
    engine.load()
    server = create_server(settings, engine)
    server.server.start()
    server.set_serving()
    total: collections.Counter[str] = collections.Counter()
    print(f"## challenges {args.challenges}, {args.prompts} prompts, {args.offsets} offsets per clip")
    print("clip | sessions | passed | failures")
    try:
        with FaceClient(f"127.0.0.1:{server.port}", timeout=120) as client:
            for path in args.clips or default_clips(args.shared):
                outcomes = replay(client, path, args.offsets)
                total.update(outcomes)
                failures = collections.Counter(o for o in outcomes if o != "PASSED")
                name = path.relative_to(args.shared) if path.is_relative_to(args.shared) else path
                print(f"{name} | {len(outcomes)} | {outcomes.count('PASSED')} | {dict(failures)}", flush=True)
    finally:
        server.server.stop(None).wait()
    sessions = sum(total.values())
    print(
        f"all | {sessions} | {total['PASSED']} ({100 * total['PASSED'] / max(sessions, 1):.1f}%) | {dict(total)}"
    )


if __name__ == "__main__":
    main()
