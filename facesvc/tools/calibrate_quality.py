"""Fit the unified quality score on lfw-devtrain, by its error-versus-discard characteristic.

    python -m facesvc.tools.calibrate_quality [--cache /tmp/facesvc-cache] [--write]

1. Every photo of ../shared/lfw-devtrain through the in-process engine under an archive
   importer's settings (as facesvc.tools.evaluate), its raw quality measures
   (facesvc.engine.quality.measures) and its embedding; cached outside the repository.
2. Every genuine pair of accepted photos (IDENTITIES.tsv: about 2,200) and its distance.
   Only ~13 of them fail at Verify's default threshold, too few to fit on, so the fit's
   target is the pair's distance beyond FIT_DISTANCE (about 260 pairs): a pair-level
   logistic regression whose linear part is the sum of its photos' terms, each measure
   transformed (|yaw|, log sharpness, ...) and standardised, weights kept to the sign a
   worse photo has (a weight of the other sign is dropped and the fit redone).
3. alpha, beta: a one-variable logistic of the real failures (distance above the default
   threshold) on the pair's summed terms, so the score reads as a chance to fail.
4. Honest figures: 5-fold cross-validation split by person (every pair of a person in one
   fold), fitted on four, the EDC counted on the fifth's pairs.

Prints the EDC table; --write writes facesvc/engine/quality/quality_table.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import expit

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.quality.eyes import MeshEyeOpenness
from facesvc.engine.quality.fusion import TABLE_FILE, TRANSFORMS, QualityFusion, transform
from facesvc.engine.quality.measures import Measures, measure
from facesvc.errors import FaceServiceError
from facesvc.tools.evaluate import IMPORTER, LFW, SHARED, embedding_key, tsv

#: The measures fitted; brightness is left out (no LFW photo is dark or blown out: its
#: limits are the liveness checks').
FITTED = (
    "yaw",
    "pitch",
    "roll",
    "sharpness",
    "saturation",
    "unevenness",
    "face_size",
    "detector_confidence",
    "embedding_norm",
    "eyes_open",
)
#: The sign of the weight a worse value of the transformed measure has (+: higher is worse).
WORSE = {
    "yaw": 1,
    "pitch": 1,
    "roll": 1,
    "sharpness": -1,
    "saturation": 1,
    "unevenness": 1,
    "face_size": -1,
    "detector_confidence": -1,
    "embedding_norm": -1,
    "eyes_open": -1,
}
#: The fit's target: a genuine pair further apart than this (SFace cosine; ~12% of pairs).
FIT_DISTANCE = 0.45
L2 = 1.0
FOLDS = 5
#: The discarded shares the EDC table reports.
DISCARDS = (0.01, 0.02, 0.05, 0.10, 0.20)
NAMES = tuple(f.name for f in fields(Measures))

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Measured:
    """A set's photos: raw measures and embeddings (NaN rows: refused)."""

    names: list[str]
    identities: npt.NDArray[np.str_]
    measures: Array  # (N, len(NAMES))
    embeddings: Array
    metric: str
    threshold: float

    @property
    def accepted(self) -> npt.NDArray[np.bool_]:
        return np.asarray(~np.isnan(self.measures).any(axis=1) & ~np.isnan(self.embeddings).any(axis=1))


def service_settings(folder: Path) -> Settings:
    """lfw-devtrain under an importer's settings, the faces sets under the service's
    (presentation-attack stage off: the sets are photos of photos)."""
    base = Settings()
    update = (
        dict(IMPORTER)
        if folder.name == LFW
        else {"presentation_attack": "off", "presentation_attack_enroll": "off"}
    )
    return base.model_copy(update={**update, "identify_fpir": 0.0})


def measure_set(folder: Path, cache: Path, engine: FaceEngine | None = None) -> Measured:
    settings = service_settings(folder)
    measured_names = hashlib.sha256(",".join(NAMES).encode()).hexdigest()[:8]
    key = f"{settings.model}-{embedding_key(folder, settings)}-{measured_names}"
    path = cache / f"quality-{folder.name}-{key}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        return Measured(
            list(data["names"]),
            data["identities"],
            data["measures"],
            data["embeddings"],
            str(data["metric"]),
            float(data["threshold"]),
        )
    engine = FaceEngine(settings)
    engine.load()
    info = engine.info()
    assert engine.face_mesh is not None  # loaded
    eyes = MeshEyeOpenness(engine.face_mesh)
    rows = tsv(folder / "IDENTITIES.tsv")
    values = np.full((len(rows), len(NAMES)), np.nan)
    embeddings = np.full((len(rows), info.embedding_dim), np.nan)
    started = time.perf_counter()
    for index, (name, _) in enumerate(rows):
        data = (folder / name).read_bytes()
        try:
            face = engine.analyse(data)
        except FaceServiceError:
            continue
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None  # the engine decoded it
        raw = measure(image, face.detection, face.detection.box.size, face.embedding, eyes)
        values[index] = [getattr(raw, n) for n in NAMES]
        embeddings[index] = face.embedding
        if index % 500 == 0:
            print(f"  measured {index}/{len(rows)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        names=np.array([n for n, _ in rows]),
        identities=np.array([w for _, w in rows]),
        measures=values,
        embeddings=embeddings,
        metric=info.distance_metric,
        threshold=info.threshold,
    )
    return measure_set(folder, cache)


def distances(a: Array, b: Array, metric: str) -> Array:
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return np.asarray(1.0 - (a * b).sum(axis=1))
    return np.asarray(np.linalg.norm(a - b, axis=1))


def genuine_pairs(
    measured: Measured, pairs_file: Path | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every same-person pair of accepted photos, or PAIRS.tsv's genuine pairs."""
    ok = measured.accepted
    if pairs_file is not None:
        index = {n: i for i, n in enumerate(measured.names)}
        rows = [
            (index[a], index[b])
            for a, b, same in tsv(pairs_file)
            if same == "1" and a in index and b in index
        ]
        rows = [(a, b) for a, b in rows if ok[a] and ok[b]]
        return np.array([a for a, _ in rows], dtype=np.int64), np.array([b for _, b in rows], dtype=np.int64)
    people: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(ok):
        people[str(measured.identities[i])].append(int(i))
    first, second = [], []
    for photos in people.values():
        for x in range(len(photos)):
            for y in range(x + 1, len(photos)):
                first.append(photos[x])
                second.append(photos[y])
    return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)


def features(measured: Measured, names: tuple[str, ...] = FITTED) -> Array:
    columns = [NAMES.index(n) for n in names]
    raw = np.nan_to_num(measured.measures[:, columns], nan=1.0)
    return np.column_stack([[transform(TRANSFORMS[n], v) for v in raw[:, j]] for j, n in enumerate(names)])


def logistic(x: Array, y: Array, l2: float = L2, iterations: int = 60) -> Array:
    """Weighted-free L2-regularised logistic regression by Newton's method; [bias, w...]."""
    n, k = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    beta = np.zeros(k + 1)
    penalty = l2 * np.diag(np.r_[0.0, np.ones(k)])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        gradient = design.T @ (p - y) + penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        beta -= np.linalg.solve(hessian, gradient)
    return beta


def fit(
    measured: Measured,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    dist: Array,
    fitted: tuple[str, ...] | None = None,
) -> QualityFusion:
    """The fusion fitted on these pairs; `fitted`: the measures that may carry weight
    (default: FITTED; the others are standardised too, with weight 0)."""
    x = features(measured)
    ok = measured.accepted
    mean, scale = x[ok].mean(axis=0), x[ok].std(axis=0) + 1e-9
    z = (x - mean) / scale
    chosen = FITTED if fitted is None else fitted
    keep = [k for k, name in enumerate(FITTED) if name in chosen]
    while True:
        beta = logistic(z[first][:, keep] + z[second][:, keep], (dist > FIT_DISTANCE).astype(float))
        wrong = [k for k, w in zip(keep, beta[1:], strict=True) if np.sign(w) not in (0, WORSE[FITTED[k]])]
        if not wrong:
            break
        keep = [k for k in keep if k not in wrong]
    weights = np.zeros(len(FITTED))
    weights[keep] = beta[1:]
    terms = z @ weights
    alpha = intercept_for((terms[first] + terms[second]), float((dist > measured.threshold).mean()))
    return QualityFusion(
        mean={n: float(m) for n, m in zip(FITTED, mean, strict=True)} | {"brightness": 0.0},
        scale={n: float(s) for n, s in zip(FITTED, scale, strict=True)} | {"brightness": 1.0},
        weight={n: float(w) for n, w in zip(FITTED, weights, strict=True)},
        alpha=alpha,
        beta=1.0,
    )


def intercept_for(terms: Array, rate: float) -> float:
    """alpha such that the pairs' mean sigmoid(alpha + terms) is `rate`: the failures at
    Verify's threshold (a dozen pairs, too few to fit a slope on) are taken to follow the
    fitted model's slope (proportional odds), so only the intercept is set on them."""
    return float(brentq(lambda alpha: float(np.mean(expit(alpha + terms))) - rate, -30.0, 30.0))


def unified_scores(fusion: QualityFusion, measured: Measured) -> Array:
    out = np.full(len(measured.names), np.nan)
    for i in np.flatnonzero(measured.accepted):
        raw = Measures(**{n: float(v) for n, v in zip(NAMES, measured.measures[i], strict=True)})
        out[i] = fusion.assess(raw)[0]
    return out


def edc(
    quality: Array, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64], failed: npt.NDArray[np.bool_]
) -> list[float]:
    """FNMR after discarding each share of DISCARDS of the lowest-quality pairs (pair
    quality: the lower of its two photos'), as a share of the FNMR discarding none."""
    pair_quality = np.minimum(quality[first], quality[second])
    order = np.argsort(pair_quality, kind="stable")
    ranked = failed[order]
    rates = [float(ranked.mean())]
    for share in DISCARDS:
        kept = ranked[round(share * len(ranked)) :]
        rates.append(float(kept.mean()))
    return rates


def cross_validated(
    measured: Measured, fitted: tuple[str, ...] | None = None
) -> tuple[Array, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each photo's unified score from the fit on the other folds' people."""
    first, second = genuine_pairs(measured)
    dist = distances(measured.embeddings[first], measured.embeddings[second], measured.metric)
    people = sorted(set(map(str, measured.identities)))
    fold_of = dict(zip(people, np.random.default_rng(0).integers(0, FOLDS, len(people)), strict=True))
    photo_fold = np.array([fold_of[str(w)] for w in measured.identities])
    pair_fold = photo_fold[first]
    quality = np.full(len(measured.names), np.nan)
    for fold in range(FOLDS):
        train = pair_fold != fold
        fusion = fit(measured, first[train], second[train], dist[train], fitted)
        held = unified_scores(fusion, measured)
        quality[photo_fold == fold] = held[photo_fold == fold]
    return quality, first, second, dist > measured.threshold


def table_rows(label: str, rates: list[float], pairs: int) -> str:
    base = rates[0]
    cuts = " | ".join(
        f"{100 * r:.2f}% ({100 * (r / base - 1):+.0f}%)" if base else f"{100 * r:.2f}%" for r in rates[1:]
    )
    return f"| {label} | {pairs} | {100 * base:.2f}% | {cuts} |"


HEADER = (
    "| set | genuine pairs | FNMR | "
    + " | ".join(f"discard {100 * s:g}%" for s in DISCARDS)
    + " |\n|"
    + "---|" * (3 + len(DISCARDS))
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facesvc-cache"))
    parser.add_argument("--write", action="store_true", help="write the table the engine reads")
    args = parser.parse_args(argv)
    measured = measure_set(SHARED / LFW, args.cache)
    quality, first, second, failed = cross_validated(measured)
    print(HEADER)
    print(
        table_rows(
            "lfw-devtrain, 5-fold by person (held out)", edc(quality, first, second, failed), len(first)
        )
    )
    dist = distances(measured.embeddings[first], measured.embeddings[second], measured.metric)
    fusion = fit(measured, first, second, dist)
    print(json.dumps(fusion.as_json(), indent=1))
    if args.write:
        TABLE_FILE.write_text(
            json.dumps(
                {
                    "provenance": "python -m facesvc.tools.calibrate_quality --write: lfw-devtrain, "
                    f"every genuine pair ({len(first)}), importer's settings, FIT_DISTANCE {FIT_DISTANCE}",
                    "models": {measured_model(measured): fusion.as_json()},
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {TABLE_FILE}")
    return 0


def measured_model(measured: Measured) -> str:
    return service_settings(SHARED / LFW).model


if __name__ == "__main__":
    sys.exit(main())
