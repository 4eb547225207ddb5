"""`make eval`: accuracy of the configured pipeline on each labelled set in ../shared/faces.

Every labelled image goes through the same engine the service runs (decode, detect,
choose, quality, liveness, embed) once; every pair of the set's PAIRS.tsv is then
scored at the serving threshold. A pair with a rejected photo counts as an error:
a false reject for a genuine pair, and a correct reject for an impostor pair is NOT
credited (it counts as an error too), so rejections never flatter the figures.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesvc.config import Settings
from facesvc.engine import FaceEngine, matching
from facesvc.errors import FaceServiceError

DEFAULT_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


@dataclass
class SetResult:
    name: str
    images: int
    rejected: Counter[str]
    pairs: int
    genuine: int
    correct: int
    false_accepts: int
    false_rejects: int
    pairs_with_rejection: int
    best_threshold: float
    best_accuracy: float
    seconds_per_image: float

    @property
    def impostors(self) -> int:
        return self.pairs - self.genuine


def _tsv(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return [row for row in csv.reader(handle, delimiter="\t") if row]


def evaluate_set(engine: FaceEngine, folder: Path, threshold: float, metric: str) -> SetResult:
    labelled = [row[0] for row in _tsv(folder / "IDENTITIES.tsv")]
    embeddings: dict[str, np.ndarray] = {}
    rejected: Counter[str] = Counter()
    started = time.perf_counter()
    for name in labelled:
        try:
            embeddings[name] = engine.analyse((folder / name).read_bytes()).embedding
        except FaceServiceError as error:
            rejected[error.reason] += 1
    per_image = (time.perf_counter() - started) / max(len(labelled), 1)

    pairs = [(a, b, same == "1") for a, b, same in _tsv(folder / "PAIRS.tsv")]
    scored: list[tuple[float, bool]] = []
    correct = false_accepts = false_rejects = with_rejection = 0
    for a, b, same in pairs:
        if a not in embeddings or b not in embeddings:
            with_rejection += 1
            false_rejects += same
            continue
        distance = float(matching.distances(embeddings[a], embeddings[b][None, :], metric)[0])
        scored.append((distance, same))
        match = distance <= threshold
        correct += match == same
        false_accepts += match and not same
        false_rejects += same and not match
    best_threshold, best_accuracy = _best_threshold(scored, len(pairs))
    return SetResult(
        name=folder.name,
        images=len(labelled),
        rejected=rejected,
        pairs=len(pairs),
        genuine=sum(same for _, _, same in pairs),
        correct=correct,
        false_accepts=false_accepts,
        false_rejects=false_rejects,
        pairs_with_rejection=with_rejection,
        best_threshold=best_threshold,
        best_accuracy=best_accuracy,
        seconds_per_image=per_image,
    )


def _best_threshold(scored: list[tuple[float, bool]], total: int) -> tuple[float, float]:
    """The threshold that would have maximised accuracy on this set (for calibration only)."""
    if not scored:
        return float("nan"), 0.0
    best = (0.0, -1)
    for candidate in sorted({d for d, _ in scored}):
        correct = sum((d <= candidate) == same for d, same in scored)
        if correct > best[1]:
            best = (candidate, correct)
    return best[0], best[1] / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="folder holding the labelled sets")
    parser.add_argument("--sets", nargs="*", default=["celebs", "yale", "orl"])
    args = parser.parse_args(argv)

    settings = Settings()
    engine = FaceEngine(settings)
    engine.load()
    info = engine.info()
    print(
        f"model {info.model}, detector {info.detector}, {info.distance_metric} threshold {info.threshold:g}"
    )
    print()
    print(
        "| set | pairs (same/diff) | accuracy | false accepts | false rejects | pairs with a rejected photo | rejected images | best threshold here (accuracy) | ms per image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        folder = args.faces / name
        if not (folder / "PAIRS.tsv").is_file():
            print(f"| {name} | missing | | | | | | | |")
            continue
        r = evaluate_set(engine, folder, info.threshold, info.distance_metric)
        rejected = ", ".join(f"{reason} {count}" for reason, count in r.rejected.most_common()) or "none"
        print(
            f"| {r.name} | {r.pairs} ({r.genuine}/{r.impostors}) | {100 * r.correct / r.pairs:.2f}% "
            f"| {r.false_accepts}/{r.impostors} ({100 * r.false_accepts / max(r.impostors, 1):.2f}%) "
            f"| {r.false_rejects}/{r.genuine} ({100 * r.false_rejects / max(r.genuine, 1):.2f}%) "
            f"| {r.pairs_with_rejection} | {r.images - sum(r.rejected.values())}/{r.images} accepted; {rejected} "
            f"| {r.best_threshold:.3f} ({100 * r.best_accuracy:.2f}%) | {1000 * r.seconds_per_image:.0f} |"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
