"""Measure the face-state thresholds (eye closed/open, head turned) on ../shared/liveness/.

    python -m facesvc.tools.calibrate_liveness [--data ../shared/liveness]

Blink clips: every frame's eye aspect ratio over the clip's median (the person's own
open-eye level) against the hand-made eye-closed labels: per-frame accuracy at the
thresholds in facesvc.engine.session.face_state, and blinks found (open -> closed -> open) against
labelled blinks, false blinks per minute. Head-turn clip: the yaw trace, its extremes,
the frames past TURN_YAW either way and the peak of every excursion from frontal (turns
against looking up and down and tilting). The estimator is the session's own
(facesvc.engine.session.face_state.MeshFaceState, on YuNet's box and eyes); its cost per
frame is printed too. Nothing is written; figures go to stdout (docs/LIVENESS.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import cv2
import numpy as np

from facesvc.engine.pipeline.detectors import YuNetDetector
from facesvc.engine.session import face_state
from facesvc.engine.session.blinks import BlinkDetector
from facesvc.engine.session.face_state import FaceState, MeshFaceState


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


_COST: list[float] = []


def _states(frames: list[np.ndarray]) -> list[FaceState | None]:
    detector = YuNetDetector(None, 0.6, 1)
    estimator = MeshFaceState(1)
    states: list[FaceState | None] = []
    for frame in frames:
        found = detector.detect(frame)
        if not found:
            states.append(None)
            continue
        best = max(found, key=lambda d: d.box.area)
        started = time.perf_counter()
        states.append(estimator.measure(frame, best.box, best.landmarks))
        _COST.append(time.perf_counter() - started)
    return states


def _minutes(video: Path, frames: int) -> float:
    """The clip's length from its capture times (the frames decoded)."""
    times = json.loads(video.with_suffix(".timestamps.json").read_text())[:frames]
    values = [datetime.datetime.fromisoformat(t).timestamp() for t in times]
    return (max(values) - min(values)) / 60.0 if len(values) > 1 else 0.0


def true_runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    runs, start = [], None
    for index, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index))
            start = None
    return runs


def _blinks_found(ratio: np.ndarray, closed_below: float, open_above: float) -> list[tuple[int, int]]:
    """(closing frame, reopening frame) of each blink: under closed_below, then over open_above."""
    found, closing = [], None
    for index, value in enumerate(ratio):
        if np.isnan(value):
            continue
        if closing is None and value < closed_below:
            closing = index
        elif closing is not None and value > open_above:
            found.append((closing, index))
            closing = None
    return found


def blinks(data: Path) -> None:
    clips = []
    minutes: dict[str, float] = {}
    for video in sorted((data / "blink").glob("*.avi")):
        labels = [line.strip() == "1" for line in video.with_suffix(".eyes_closed.csv").read_text().split()]
        states = _states(_frames(video))
        count = min(len(labels), len(states))
        openness = np.array([s.eye_openness if s else np.nan for s in states[:count]])
        clips.append((video.stem, openness / np.nanmedian(openness), np.array(labels[:count])))
        minutes[video.stem] = _minutes(video, count)
    print("## blink clips: eye aspect ratio over the clip's median; a blink is a fall under")
    print("## `closed` then a rise over `open`; a labelled blink is found when a fall lands")
    print(
        "## within 2 frames of its labelled run. Current: closed "
        f"{face_state.EYE_CLOSED_RATIO}, open {face_state.EYE_OPEN_RATIO}"
    )
    all_minutes = sum(minutes.values())
    print(
        "closed | open | blinks labelled | found | false blinks | false per minute (30 fps clips) "
        f"| false per minute (all {all_minutes:.1f} min)"
    )
    grid = ((0.80, 0.85), (0.85, 0.90), (0.87, 0.92), (0.88, 0.93), (0.89, 0.94), (0.90, 0.95))
    for closed_below, open_above in grid:
        labelled = hits = false = 0
        false_30fps = 0
        for stem, ratio, truth in clips:
            runs = true_runs(list(truth))
            found = _blinks_found(ratio, closed_below, open_above)
            labelled += len(runs)
            hits += sum(any(s - 2 <= f[0] <= e + 1 for f in found) for s, e in runs)
            wrong = sum(not any(s - 2 <= f[0] <= e + 1 for s, e in runs) for f in found)
            false += wrong
            if stem in ("mahie_test_1", "mahie_test_2", "mahie_test_3"):
                false_30fps += wrong
        thirty_fps_minutes = sum(minutes[s] for s in ("mahie_test_1", "mahie_test_2", "mahie_test_3"))
        print(
            f"{closed_below} | {open_above} | {labelled} | {hits} | {false} | "
            f"{false_30fps / thirty_fps_minutes:.2f} | {false / all_minutes:.2f}"
        )
    print("\nper clip at the current thresholds: clip | frames | minutes | labelled blinks | found | false")
    for stem, ratio, truth in clips:
        runs = true_runs(list(truth))
        found = _blinks_found(ratio, face_state.EYE_CLOSED_RATIO, face_state.EYE_OPEN_RATIO)
        hits = sum(any(s - 2 <= f[0] <= e + 1 for f in found) for s, e in runs)
        wrong = sum(not any(s - 2 <= f[0] <= e + 1 for s, e in runs) for f in found)
        print(f"{stem} | {len(truth)} | {minutes[stem]:.2f} | {len(runs)} | {hits} | {wrong}")
    closed = np.concatenate([r[t & ~np.isnan(r)] for _, r, t in clips])
    opened = np.concatenate([r[~t & ~np.isnan(r)] for _, r, t in clips])
    print(f"ratio of labelled-closed frames: p10 {np.percentile(closed, 10):.3f} p50 {np.median(closed):.3f}")
    print(
        f"ratio of labelled-open frames: p1 {np.percentile(opened, 1):.3f} p5 {np.percentile(opened, 5):.3f}"
    )


def _detected(states: list[FaceState | None], times: list[float], **params: float) -> list[int]:
    """The frames where the session's BlinkDetector saw a blink fall (frontal faces fed,
    others interrupt it, as in a session)."""
    del times
    rows = np.array([(s.eye_openness, s.eye_texture, s.yaw) if s else (np.nan,) * 3 for s in states])
    return _detected_rows(rows.reshape(-1, 3), **params)


def _detected_rows(rows: np.ndarray, **params: float) -> list[int]:
    """_detected on (eye openness, eye texture, yaw) rows, NaN where no face."""
    detector = BlinkDetector(**params)  # type: ignore[arg-type]
    for index, (openness, texture, yaw) in enumerate(rows):
        if np.isnan(openness) or abs(yaw) >= face_state.TURN_YAW / 2:
            detector.interrupt()
        else:
            detector.observe(float(openness), float(texture), float(index))
    return [int(t) for t in detector.blinks]


#: The session's states on the labelled clips, cached outside the repo (delete to remeasure).
STATE_CACHE = Path("/tmp/facesvc-cache/liveness-blink-states.npz")


def _labelled_clips(data: Path) -> list[tuple[str, np.ndarray, list[tuple[int, int]], float]]:
    """(clip, its (openness, texture, yaw) rows, labelled blink runs, minutes) per blink clip."""
    cached = dict(np.load(STATE_CACHE)) if STATE_CACHE.exists() else {}
    clips = []
    for video in sorted((data / "blink").glob("*.avi")):
        labels = [line.strip() == "1" for line in video.with_suffix(".eyes_closed.csv").read_text().split()]
        if video.stem not in cached:
            states = _states(_frames(video))
            cached[video.stem] = np.array(
                [(s.eye_openness, s.eye_texture, s.yaw) if s else (np.nan,) * 3 for s in states]
            ).reshape(-1, 3)
            STATE_CACHE.parent.mkdir(parents=True, exist_ok=True)
            np.savez(STATE_CACHE, **cached)
        rows = cached[video.stem]
        count = min(len(labels), len(rows))
        clips.append((video.stem, rows[:count], true_runs(labels[:count]), _minutes(video, count)))
    return clips


def _count(rows: np.ndarray, runs: list[tuple[int, int]], **params: float) -> tuple[int, int]:
    """(labelled blinks found, false blinks): a fall within 2 frames of a labelled run."""
    found = _detected_rows(rows, **params)
    hits = sum(any(s - 2 <= f <= e + 1 for f in found) for s, e in runs)
    return hits, sum(not any(s - 2 <= f <= e + 1 for s, e in runs) for f in found)


def detector_blinks(data: Path) -> None:
    """The session's blink detector (facesvc.engine.session.blinks) on the labelled clips."""
    print("\n## the session's blink detector (two signals, a blink's shape): per clip")
    print("clip | labelled blinks | found | false")
    labelled = hits = false = 0
    all_minutes = 0.0
    for stem, rows, runs, minutes in _labelled_clips(data):
        clip_hits, clip_false = _count(rows, runs)
        labelled, hits, false = labelled + len(runs), hits + clip_hits, false + clip_false
        all_minutes += minutes
        print(f"{stem} | {len(runs)} | {clip_hits} | {clip_false}")
    print(
        f"all | {labelled} | {hits} | {false} ({false / all_minutes:.2f} a minute over {all_minutes:.1f} min)"
    )


def leave_one_out(data: Path) -> None:
    """The detector's thresholds chosen on eight clips and counted on the ninth, for each
    clip in turn: on the eight, the most blinks found at most 0.5 false a minute (then the
    fewest false), over a grid of closed ratio, open-closed gap, confirmation and texture weight."""
    clips = _labelled_clips(data)
    grid = [
        {"closed_ratio": c, "open_ratio": round(c + g, 3), "confirm_ratio": k, "texture_weight": w}
        for c in (0.86, 0.87, 0.88, 0.89, 0.90)
        for g in (0.01, 0.02, 0.03)
        for k in (0.90, 0.92, 0.94)
        for w in (0.2, 0.3, 0.4, 0.5)
    ]
    counts = [[_count(rows, runs, **params) for _, rows, runs, _ in clips] for params in grid]
    minutes = [clip[3] for clip in clips]

    def best(train: list[int]) -> int:
        def key(index: int) -> tuple[bool, int, int]:
            found = sum(counts[index][i][0] for i in train)
            false = sum(counts[index][i][1] for i in train)
            return false / sum(minutes[i] for i in train) <= 0.5, found, -false

        return max(range(len(grid)), key=key)

    print(
        f"\n## leave one clip out ({len(grid)} threshold sets): clip | chosen on the others | found | false"
    )
    hits = false = 0
    for held, (stem, _, runs, _) in enumerate(clips):
        chosen = best([i for i in range(len(clips)) if i != held])
        clip_hits, clip_false = counts[chosen][held]
        hits, false = hits + clip_hits, false + clip_false
        print(f"{stem} | {grid[chosen]} | {clip_hits} of {len(runs)} | {clip_false}")
    labelled = sum(len(clip[2]) for clip in clips)
    print(f"held-out sum | {labelled} | {hits} | {false} ({false / sum(minutes):.2f} a minute)")
    chosen = best(list(range(len(clips))))
    found, wrong = (sum(c[i] for c in counts[chosen]) for i in (0, 1))
    print(
        f"chosen on all nine: {grid[chosen]}: {found} found, {wrong} false ({wrong / sum(minutes):.2f} a minute)"
    )


def _video_minutes(path: Path, frames: int) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    return frames / fps / 60.0


def unlabelled_blinks(shared: Path) -> None:
    """Blinks the detector sees where no labels exist: live selfie videos and their replays
    (../shared/pad/screens: a replay shows the recorded person's real blinks), a still
    (one frame with fresh camera-like noise each time) and NUAA print sequences (no eyes
    that close: every blink there is false)."""
    print("\n## blinks seen without labels: source | frames | minutes | blinks | per minute")
    screens = shared / "pad" / "screens"
    videos = sorted(p for p in screens.rglob("*") if p.suffix.lower() in (".mp4", ".mov", ".3gp"))
    for kind in ("live", "attack"):
        frames_total, minutes, found = 0, 0.0, 0
        for video in (v for v in videos if f"/{kind}/" in str(v)):
            frames = _frames(video)
            found += len(_detected(_states(frames), []))
            frames_total += len(frames)
            minutes += _video_minutes(video, len(frames))
        print(f"pad/screens {kind} videos | {frames_total} | {minutes:.2f} | {found} | {found / minutes:.2f}")
    still = _frames(shared / "liveness" / "blink" / "mahie_test_1.avi")[5]
    rng = np.random.default_rng(0)
    noisy = [np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(450)]
    found = len(_detected(_states(noisy), []))
    print(
        f"a still with camera noise (mahie_test_1 frame 5), 30 fps | 450 | 0.25 | {found} | {found / 0.25:.2f}"
    )
    nuaa = shared / "pad" / "nuaa" / "ImposterRaw"
    frames_total, found = 0, 0
    for subject in sorted(p for p in nuaa.iterdir() if p.is_dir()):
        prints = [image for p in sorted(subject.glob("*.jpg")) if (image := cv2.imread(str(p))) is not None]
        found += len(_detected(_states(prints), []))
        frames_total += len(prints)
    minutes = frames_total / 15 / 60  # sent as a 15 fps sequence
    print(
        f"NUAA print sequences (all subjects, at 15 fps) | {frames_total} | {minutes:.2f} | {found} | {found / minutes:.2f}"
    )


def head_turn(data: Path) -> None:
    video = data / "head-turn" / "head_turns.mp4"
    frames = _frames(video)
    states = _states(frames)
    yaw = np.array([s.yaw if s else np.nan for s in states])
    frontal = float(np.nanmedian(yaw[: min(15, len(yaw))]))
    relative = yaw - frontal
    print(f"\n## head-turn clip: {len(frames)} frames, {int(np.isnan(yaw).sum())} without a face")
    print(
        f"frontal yaw (median of the first 15 frames) {frontal:.3f}; relative yaw min "
        f"{np.nanmin(relative):.3f} max {np.nanmax(relative):.3f}"
    )
    for name, flags in (
        ("nose to image right (+)", relative > face_state.TURN_YAW),
        ("nose to image left (-)", relative < -face_state.TURN_YAW),
    ):
        print(f"{name}: frames {[list(r) for r in true_runs(list(flags))]}")
    print(f"excursions from frontal (|relative yaw| > {face_state.TURN_YAW / 2:g}): frames, peak")
    for start, end in true_runs(list(np.abs(np.nan_to_num(relative)) > face_state.TURN_YAW / 2)):
        peak = relative[start:end][np.nanargmax(np.abs(relative[start:end]))]
        print(f"  {start}-{end - 1}: {peak:+.2f}")
    trace = " ".join(f"{i}:{v:+.2f}" for i, v in enumerate(relative) if i % 5 == 0 and not np.isnan(v))
    print(f"trace (every 5th frame): {trace}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/liveness"))
    parser.add_argument("--only", choices=("blink", "turn", "detector", "loo"))
    args = parser.parse_args()
    if args.only in (None, "blink"):
        blinks(args.data)
    if args.only in (None, "detector"):
        detector_blinks(args.data)
        unlabelled_blinks(args.data.parent)
    if args.only in (None, "loo"):
        leave_one_out(args.data)
    if args.only in (None, "turn"):
        head_turn(args.data)
    if not _COST:
        return  # every state came from the cache
    cost = np.array(_COST) * 1000
    print(
        f"\nface-state cost per frame (crop + mesh, OpenCV's default threads): "
        f"median {np.median(cost):.2f} ms, p95 {np.percentile(cost, 95):.2f} ms over {len(cost)} frames"
    )


if __name__ == "__main__":
    main()
