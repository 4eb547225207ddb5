"""Presentation-attack calibration: every signal's score on every frame of ../shared/pad,
each signal's AUC per source, and the fusion's leave-one-source-out table.

`python -m facesvc.tools.calibrate_pad` extracts (cached) and prints the per-source AUC of
each signal; `--loso` adds the leave-one-source-out table (fit the fusion on every source
but one, measure on the one left out); `--write` fits on all development sources and
writes the shipped fusion file (facesvc/models/attack_fusion/fusion.json; put its new
SHA-256 into facesvc/engine/pipeline/attack_fusion.py).

Frames: every image; from each video, frames evenly spaced (at most --live-frames per
live video, --attack-frames per attack video). Frames of one video are not independent,
so folds are whole sources, never frames. Each frame goes through a JPEG round trip (as
a caller sends it), YuNet finds the faces at 640 px and the largest is scored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facesvc.config import Settings
from facesvc.engine.pipeline.attack_fusion import FUSION_FILE, Fusion, feature_value
from facesvc.engine.pipeline.attack_signals import Signal, normalise
from facesvc.engine.pipeline.attack_signals.color_texture import ColorTextureSignal, chi_square, histograms
from facesvc.engine.pipeline.attack_signals.device_edges import DeviceEdgeSignal
from facesvc.engine.pipeline.attack_signals.frequency import HighFrequencySignal, SpectralPeakSignal
from facesvc.engine.pipeline.attack_signals.minifasnet import (
    FRAMINGS,
    MiniFASNetSignal,
    context_available,
    trained_box,
)
from facesvc.engine.pipeline.attack_signals.specular import GlareSignal
from facesvc.engine.pipeline.detectors import create_detector

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CACHE = Path("/tmp/issue-19-cache")
VIDEO_SUFFIXES = {".mp4", ".mov", ".3gp", ".avi"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
#: Long side a frame is held at before scoring: what the engine's libjpeg reduction leaves
#: of a 13 MP selfie is of this order, and it bounds the cost of extraction.
HOLD_PX = 1280


@dataclass(frozen=True)
class Item:
    """One file of the development data and what it shows."""

    source: str
    path: Path
    person: str
    live: bool
    instrument: str  # "live", or the attack instrument


@dataclass
class Frame:
    source: str
    file: str
    person: str
    live: bool
    instrument: str
    index: int
    width: int = 0
    height: int = 0
    face_px: float = 0.0  # 0: no face found
    context: float = 0.0
    cut_off: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    lbp: list[float] = field(default_factory=list)


def development_items(shared: Path) -> list[Item]:
    """Every file of ../shared/pad with its source, person, label and instrument."""
    pad = shared / "pad"
    items: list[Item] = []
    for path in sorted((pad / "nuaa" / "ClientRaw").glob("*/*.jpg")):
        items.append(Item("nuaa", path, path.parent.name, True, "live"))
    for path in sorted((pad / "nuaa" / "ImposterRaw").glob("*/*.jpg")):
        items.append(Item("nuaa", path, path.parent.name, False, "print"))
    for path in sorted((pad / "screen-crops" / "real").glob("*.png")):
        items.append(Item("screen-crops", path, "one", True, "live"))
    for path in sorted((pad / "screen-crops" / "fake").glob("*.png")):
        items.append(Item("screen-crops", path, "one", False, "screen"))
    for name, live, instrument in (
        ("image_T1.jpg", True, "live"),
        ("image_T2.jpg", True, "live"),
        ("image_F1.jpg", False, "print"),
        ("image_F2.jpg", False, "tablet"),
    ):
        items.append(Item("silentface", pad / "silentface" / name, name, live, instrument))
    screens = pad / "screens"
    for path in sorted((screens / "msu-mfsd-train").glob("*/*.jpg")):
        client = re.search(r"client0*(\d+)", path.name)
        kind = next((k for k in ("ipad", "iphone", "printed") if k in path.name), "live")
        instrument = {"ipad": "tablet", "iphone": "phone", "printed": "print"}.get(kind, "live")
        items.append(
            Item("msu-mfsd", path, client.group(1) if client else path.name, kind == "live", instrument)
        )
    for folder in ("trainingdata-antispoof", "tranvanluyt2203", "wolf-huo"):
        for path in sorted((screens / folder).rglob("*")):
            if path.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
                continue
            live = path.relative_to(screens / folder).parts[0] == "live"
            person = path.parent.name.split("--")[-1] if folder == "trainingdata-antispoof" else folder
            instrument = "live" if live else ("screen" if folder == "wolf-huo" else "phone")
            items.append(Item(folder, path, person, live, instrument))
    return items


def frames_of(path: Path, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """The image, or up to `count` frames evenly spaced through the video."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield 0, image
        return
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            return
        wanted = sorted({int(i) for i in np.linspace(0, total - 1, min(count, total))})
        index = 0
        for target in wanted:
            # Grab (no decode) up to the target: seeking is unreliable in phone videos.
            while index < target and capture.grab():
                index += 1
            ok, frame = capture.read()
            index += 1
            if not ok:
                return
            yield target, frame
    finally:
        capture.release()


class Extractor:
    """Every signal, the raw LBP descriptor and the facts the stage decides on, per frame."""

    def __init__(self) -> None:
        settings = Settings()
        self.detection_size = settings.detection_size
        self.detector = create_detector("yunet", None, settings.detector_min_confidence, 1)
        self.minifasnet = MiniFASNetSignal(1)
        self.signals: list[Signal] = [
            HighFrequencySignal(),
            SpectralPeakSignal(),
            GlareSignal(),
            DeviceEdgeSignal(),
        ]

    def frame(self, item: Item, index: int, image: np.ndarray) -> Frame:
        record = Frame(item.source, str(item.path), item.person, item.live, item.instrument, index)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            image = decoded
        record.height, record.width = image.shape[:2]
        factor = min(1.0, HOLD_PX / max(image.shape[:2]))
        if factor < 1.0:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        detect_scale = self.detection_size / max(image.shape[:2])
        small = cv2.resize(image, None, fx=detect_scale, fy=detect_scale, interpolation=cv2.INTER_AREA)
        if 2 * max(small.shape[:2]) <= self.detection_size:  # as the engine: small images upscaled
            small = cv2.resize(small, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
            detect_scale *= 2.0
        detections = self.detector.detect(small)
        if not detections:
            return record
        box = max(detections, key=lambda d: d.box.area).box.scaled(1 / detect_scale)
        record.face_px = box.size / factor
        height, width = image.shape[:2]
        outside_x = max(0.0, -box.x) + max(0.0, box.x + box.width - width)
        outside_y = max(0.0, -box.y) + max(0.0, box.y + box.height - height)
        record.cut_off = outside_x > 0.1 * box.width or outside_y > 0.1 * box.height
        record.context = context_available(image, box)
        for framing in FRAMINGS:
            record.scores[f"minifasnet_{framing}"] = self.minifasnet.score_trained_box(
                image, trained_box(box), framing
            )
        frame, frame_box = normalise(image, box)
        for signal in self.signals:
            record.scores[signal.name] = signal.score(frame, frame_box)
        record.lbp = [round(float(v), 6) for v in histograms(frame, frame_box)]
        return record


def extract(
    shared: Path, live_frames: int, attack_frames: int, cache: Path, quiet: bool = False
) -> list[Frame]:
    """Every frame's record, from the cache where the file was already scored."""
    cache.mkdir(parents=True, exist_ok=True)
    extractor: Extractor | None = None
    frames: list[Frame] = []
    items = development_items(shared)
    for number, item in enumerate(items):
        count = live_frames if item.live else attack_frames
        key = hashlib.sha256(f"v1|{item.path}|{count}".encode()).hexdigest()[:20]
        stored = cache / f"{key}.json"
        if stored.is_file():
            records = [Frame(**row) for row in json.loads(stored.read_text())]
        else:
            extractor = extractor or Extractor()
            records = [extractor.frame(item, index, image) for index, image in frames_of(item.path, count)]
            stored.write_text(json.dumps([asdict(r) for r in records]))
            if not quiet:
                print(
                    f"  [{number + 1}/{len(items)}] {item.source} {item.path.name}: {len(records)} frames",
                    file=sys.stderr,
                )
        frames.extend(records)
    return frames


def auc(live: np.ndarray, attack: np.ndarray) -> float:
    """P(live score > attack score), ties half: the signal's separation, 0.5 = none."""
    if len(live) == 0 or len(attack) == 0:
        return float("nan")
    both = np.concatenate([live, attack])
    ranks = np.argsort(np.argsort(both, kind="mergesort"), kind="mergesort").astype(np.float64) + 1
    # average ranks for ties
    order = np.argsort(both, kind="mergesort")
    sorted_values = both[order]
    start = 0
    for end in range(1, len(both) + 1):
        if end == len(both) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[: len(live)].sum() - len(live) * (len(live) + 1) / 2) / (len(live) * len(attack)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--live-frames", type=int, default=12, help="frames per live video")
    parser.add_argument("--attack-frames", type=int, default=40, help="frames per attack video")
    parser.add_argument("--loso", action="store_true", help="print the leave-one-source-out table")
    parser.add_argument("--write", action="store_true", help="fit on every source, write the fusion file")
    parser.add_argument("--min-face-size", type=float, default=80.0, help="the stage's face floor, px")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    frames = [
        f for f in extract(args.shared, args.live_frames, args.attack_frames, args.cache) if f.face_px > 0
    ]
    print(f"{len(frames)} frames with a face, {len({f.file for f in frames})} files")
    print()
    print("AUC of each signal per source (P(live scores higher than attack); < 0.5: higher means attack;")
    print("colour texture's references built on the other sources):")
    print()
    # colour texture's references are fitted: each source's values come from references
    # built on the other sources, so its AUC is held-out like the rest.
    sources = sorted({f.source for f in frames})
    held_out = [
        g
        for source in sources
        for g in _with_color_texture(
            [f for f in frames if f.source == source], [f for f in frames if f.source != source]
        )
    ]
    print_aucs(held_out)
    if args.loso:
        print()
        print_loso(frames, args.min_face_size)
    if args.write:
        fusion = fit(frames)
        FUSION_FILE.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(fusion.as_json(), indent=1) + "\n"
        FUSION_FILE.write_text(text)
        print()
        print(f"wrote {FUSION_FILE}: SHA-256 {hashlib.sha256(text.encode()).hexdigest()}")
    return 0


# ---- fusion: fit, threshold, leave-one-source-out ---------------------------------------

#: The signals the shipped fusion weighs: the ones that earned their place leave-one-source-
#: out (docs/PRESENTATION_ATTACK_SIGNALS.md); the others are measured and printed beside.
FEATURES: tuple[str, ...] = ("minifasnet", "spectral_peaks")
FRAMING = "clamped"
#: The min rule: MiniFASNet's own probability caps the live score (see attack_fusion).
CAPPED_BY = "minifasnet"
#: What the LOSO table also prints, to show why the shipped choice is the shipped one.
ALTERNATIVES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("minifasnet",), "clamped", ""),
    (("minifasnet", "spectral_peaks"), "clamped", ""),
    (("minifasnet", "spectral_peaks"), "replicate", "minifasnet"),
    (
        ("minifasnet", "color_texture", "high_frequency", "spectral_peaks", "glare", "device_edges"),
        "clamped",
        "",
    ),
)
#: Live frames of the training sources the threshold may refuse (each source weighs the same).
TARGET_BPCER = 0.01
#: The stage's face floor (Settings.presentation_attack_min_face_size's default).
MIN_FACE_SIZE = 80.0
L2 = 1.0


def _weights(frames: list[Frame]) -> np.ndarray:
    """Each (source, class) weighs the same in total: NUAA's 1,400 frames do not outvote
    MSU-MFSD's 60."""
    groups: dict[tuple[str, bool], int] = {}
    for f in frames:
        groups[(f.source, f.live)] = groups.get((f.source, f.live), 0) + 1
    return np.array([1.0 / groups[(f.source, f.live)] for f in frames])


def _references(frames: list[Frame]) -> tuple[np.ndarray, np.ndarray]:
    weights = _weights(frames)
    lbp = np.array([f.lbp for f in frames])
    live = np.array([f.live for f in frames])
    live_ref = np.average(lbp[live], axis=0, weights=weights[live])
    attack_ref = np.average(lbp[~live], axis=0, weights=weights[~live])
    return live_ref, attack_ref


def _with_color_texture(frames: list[Frame], reference_frames: list[Frame]) -> list[Frame]:
    live_ref, attack_ref = _references(reference_frames)
    signal = ColorTextureSignal(live_ref, attack_ref)
    out = []
    for f in frames:
        descriptor = np.asarray(f.lbp)
        scores = dict(
            f.scores,
            color_texture=chi_square(descriptor, signal.attack_reference)
            - chi_square(descriptor, signal.live_reference),
        )
        out.append(Frame(**{**asdict(f), "scores": scores}))
    return out


def _raw(frame: Frame, framing: str) -> dict[str, float]:
    raw = dict(frame.scores)
    raw["minifasnet"] = raw[f"minifasnet_{framing}"]
    return raw


def _matrix(frames: list[Frame], framing: str, features: tuple[str, ...]) -> np.ndarray:
    return np.array([[feature_value(n, _raw(f, framing)[n]) for n in features] for f in frames])


def fit(
    frames: list[Frame],
    framing: str = FRAMING,
    features: tuple[str, ...] = FEATURES,
    capped_by: str = CAPPED_BY,
) -> Fusion:
    """Logistic regression (IRLS, L2) on standardised values, then the bias moved so that
    0.5 refuses TARGET_BPCER of the training sources' live frames. Frames the stage cannot
    judge (under the face floor, cut off) are left out: it never scores them."""
    frames = [f for f in frames if not unscorable(f, MIN_FACE_SIZE)]
    live_ref, attack_ref = _references(frames)
    frames = _with_color_texture(frames, frames)
    x = _matrix(frames, framing, features)
    y = np.array([1.0 if f.live else 0.0 for f in frames])
    weights = _weights(frames)
    mean = np.average(x, axis=0, weights=weights)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weights)) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    penalty = np.diag([0.0] + [L2] * (z.shape[1] - 1))
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -50, 50)))
        gradient = z.T @ (weights * (y - p)) - penalty @ beta
        hessian = (z * (weights * p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    logits = z @ beta
    live = y == 1
    threshold = _quantile(logits[live], weights[live], TARGET_BPCER)
    if "color_texture" not in features:  # no references to ship
        live_ref, attack_ref = np.zeros(0), np.zeros(0)
    bias = float(beta[0] - threshold)
    return Fusion(features, mean, scale, beta[1:], bias, framing, live_ref, attack_ref, capped_by)


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][np.searchsorted(cumulative, q)])


@dataclass
class Tally:
    judged: int = 0
    refused: int = 0
    accepted: int = 0
    not_scorable: int = 0


def unscorable(frame: Frame, min_face_size: float) -> bool:
    """What the stage still cannot judge: a face under its size floor or cut by the frame."""
    return frame.face_px < min_face_size or frame.cut_off


def tally(fusion: Fusion, frames: list[Frame], min_face_size: float) -> dict[str, Tally]:
    """Per instrument ('live' included): frames, refused (attack or not scorable), accepted."""
    out: dict[str, Tally] = {}
    for f in frames:
        t = out.setdefault(f.instrument, Tally())
        t.judged += 1
        if unscorable(f, min_face_size):
            t.not_scorable += 1
            t.refused += 1
            continue
        live = fusion.live_score(_raw(f, fusion.framing)) >= 0.5
        t.accepted += live
        t.refused += not live
    return out


def _rate(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "-"


def print_loso(frames: list[Frame], min_face_size: float) -> None:
    """Fit on every source but one, measure on it; the same for each source."""
    sources = sorted({f.source for f in frames})
    for features, framing, capped_by in ((FEATURES, FRAMING, CAPPED_BY), *ALTERNATIVES):
        chosen = (features, framing, capped_by) == (FEATURES, FRAMING, CAPPED_BY)
        rule = f", capped by {capped_by} (min rule)" if capped_by else ""
        print(
            f"Leave-one-source-out ({'SHIPPED' if chosen else 'not shipped'}): fusion of "
            f"{', '.join(features)}{rule}, MiniFASNet crops '{framing}';"
        )
        print(
            f"threshold set on the training sources' live frames at BPCER {TARGET_BPCER:.0%}, face floor {min_face_size:g} px:"
        )
        print()
        print(
            "| left out | live refused (BPCER, any reason) | of which not scorable | APCER per instrument | worst APCER |"
        )
        print("|---|---|---|---|---|")
        for held in sources:
            train = [f for f in frames if f.source != held]
            test = _with_color_texture([f for f in frames if f.source == held], train)
            fusion = fit(train, framing, features, capped_by)
            result = tally(fusion, test, min_face_size)
            live = result.get("live", Tally())
            attacks = {k: v for k, v in result.items() if k != "live"}
            cells = ", ".join(f"{k} {_rate(v.accepted, v.judged)}" for k, v in sorted(attacks.items()))
            worst = max((v.accepted / v.judged for v in attacks.values() if v.judged), default=0.0)
            print(
                f"| {held} | {_rate(live.refused, live.judged)} | {live.not_scorable} | {cells} | {100 * worst:.1f}% |"
            )
        print()
        sys.stdout.flush()


def print_aucs(frames: list[Frame]) -> None:
    names = sorted({name for f in frames for name in f.scores})
    sources = sorted({f.source for f in frames})
    print("| signal | " + " | ".join(sources) + " |")
    print("|---|" + "---|" * len(sources))
    for name in names:
        cells = []
        for source in sources:
            live = np.array([f.scores[name] for f in frames if f.source == source and f.live])
            attack = np.array([f.scores[name] for f in frames if f.source == source and not f.live])
            cells.append(f"{auc(live, attack):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
