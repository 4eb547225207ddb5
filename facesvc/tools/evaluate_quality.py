"""`make eval`'s quality table: the error-versus-discard characteristic (EDC) of the unified score.

    python -m facesvc.tools.evaluate_quality [--cache /tmp/facesvc-cache]

FNMR at Verify's default threshold as the lowest-quality genuine comparisons are discarded
(a pair's quality: the lower of its two photos' unified scores), and how much of the FNMR
that removes. Rows: lfw-devtrain with each photo scored by a fit on the other people
(5-fold, split by person: the honest figure), lfw-devtrain under the shipped table (the
fit's own data), and the shared faces sets' PAIRS.tsv genuine pairs under the shipped
table (out of source: nothing was fitted on them), plus the original score's EDC on each;
and which of a person's photos each ranking keeps as the template (template_choice).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facesvc.engine.pipeline.recognizers import SFaceRecognizer
from facesvc.engine.quality.fusion import load_tables
from facesvc.tools import calibrate_quality as cq
from facesvc.tools.evaluate import FACE_SETS, LFW, SHARED

#: SFace's FAR 0.01% operating point.
STRICT_THRESHOLD = next(p.threshold for p in SFaceRecognizer.operating_points if p.far == 0.0001)


def original_scores(measured: cq.Measured) -> np.ndarray:
    """The original score's ranking signal, from the same measures (50/30/20 mix)."""
    from facesvc.engine.pipeline import quality as original

    out = np.full(len(measured.names), np.nan)
    column = {n: measured.measures[:, i] for i, n in enumerate(cq.NAMES)}
    for i in np.flatnonzero(measured.accepted):
        sharp = original.sharpness_score(column["sharpness"][i])
        mean = column["brightness"][i]
        low, high = original.BRIGHTNESS_BAND
        bright = (
            100.0 * mean / low
            if mean < low
            else 100.0 * (255 - mean) / (255 - high)
            if mean > high
            else 100.0
        )
        size = 100.0 * min(1.0, column["face_size"][i] / original.FACE_SIZE_FULL)
        out[i] = round(sum(w * v for w, v in zip(original.WEIGHTS, (sharp, bright, size), strict=True)), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facesvc-cache"))
    parser.add_argument("--sets", nargs="*", default=[LFW, *FACE_SETS])
    args = parser.parse_args(argv)
    fusion = load_tables()["SFace"]
    print(cq.HEADER)
    separation: list[tuple[str, float, float, float, float]] = []
    lfw_held: tuple[cq.Measured, np.ndarray] | None = None
    for name in args.sets:
        folder = SHARED / LFW if name == LFW else SHARED / "faces" / name
        measured = cq.measure_set(folder, args.cache)
        if name == LFW:
            held, first, second, failed = cq.cross_validated(measured)
            lfw_held = (measured, held)
            dist = cq.distances(measured.embeddings[first], measured.embeddings[second], measured.metric)
            print(
                cq.table_rows(
                    "lfw-devtrain, unified, 5-fold by person", cq.edc(held, first, second, failed), len(first)
                )
            )
            # ~13 failed pairs make each figure above move ~8 points a pair: the same ranking
            # against the failures at the FAR 0.01% point (~29 pairs) is the steadier reading.
            print(
                cq.table_rows(
                    f"lfw-devtrain, unified, 5-fold by person, failures at {STRICT_THRESHOLD}",
                    cq.edc(held, first, second, dist > STRICT_THRESHOLD),
                    len(first),
                )
            )
        else:
            first, second = cq.genuine_pairs(measured, folder / "PAIRS.tsv")
            dist = cq.distances(measured.embeddings[first], measured.embeddings[second], measured.metric)
            failed = dist > measured.threshold
        if not len(first):
            print(f"| {name} | 0 (every photo refused under these settings) | | | | | | |")
            continue
        shipped = cq.unified_scores(fusion, measured)
        label = "lfw-devtrain, unified, shipped table (fit data)" if name == LFW else f"{name}, unified"
        print(cq.table_rows(label, cq.edc(shipped, first, second, failed), len(first)))
        print(
            cq.table_rows(
                f"{name}, original score",
                cq.edc(original_scores(measured), first, second, failed),
                len(first),
            )
        )
        separation.append(
            (
                name,
                *apart(shipped, first, second, dist),
                *apart(original_scores(measured), first, second, dist),
            )
        )
    if lfw_held is not None:
        print("\n" + template_choice(*lfw_held))
    # The shared faces sets have no failed genuine pair: how far apart the lowest fifth of
    # the pairs lie, against the rest, is the measurable sign there.
    print(
        "\n| set | unified: lowest 20% of pairs / rest, mean distance | original score: same |\n|---|---|---|"
    )
    for name, low, rest, old_low, old_rest in separation:
        print(
            f"| {name} | {low:.3f} / {rest:.3f} ({low / rest:.2f}x) "
            f"| {old_low:.3f} / {old_rest:.3f} ({old_low / old_rest:.2f}x) |"
        )
    return 0


def template_choice(measured: cq.Measured, held: np.ndarray) -> str:
    """Which photo of three to keep as a person's template: for every lfw-devtrain person
    with four or more accepted photos, the first three (by file name) are the candidates,
    the rest are probes; the template kept by each ranking (the held-out unified score, the
    original score, file order) and the share of probes further from it than 0.45 and 0.5
    (a probe's distance to the kept template). What Enroll's template choice rests on
    (facesvc.engine.templates.enrolment.template_quality)."""
    people: dict[str, list[int]] = {}
    for i in np.flatnonzero(measured.accepted):
        people.setdefault(str(measured.identities[i]), []).append(int(i))
    original = original_scores(measured)
    rankings = {
        "the unified score (5-fold, held out)": held,
        "the original score": original,
        "file order (the first photo)": -np.arange(len(measured.names), dtype=float),
    }
    lines = ["| template kept, of 3 photos | probes | beyond 0.45 | beyond 0.5 |", "|---|---|---|---|"]
    for label, rank in rankings.items():
        apart_from: list[float] = []
        for photos in people.values():
            if len(photos) < 4:
                continue
            pool = photos[:3]
            kept = pool[int(np.argmax(rank[pool]))]
            probes = measured.embeddings[photos[3:]]
            kept_rows = np.repeat(measured.embeddings[[kept]], len(probes), axis=0)
            apart_from += cq.distances(kept_rows, probes, measured.metric).tolist()
        far = np.asarray(apart_from)
        lines.append(
            f"| {label} | {len(far)} | {100 * (far > 0.45).mean():.1f}% | {100 * (far > 0.5).mean():.1f}% |"
        )
    return "\n".join(lines)


def apart(
    quality: np.ndarray, first: np.ndarray, second: np.ndarray, dist: np.ndarray
) -> tuple[float, float]:
    """Mean genuine distance of the fifth of pairs with the lowest pair quality, and of the rest."""
    pair_quality = np.minimum(quality[first], quality[second])
    mask = np.zeros(len(dist), dtype=bool)
    mask[np.argsort(pair_quality, kind="stable")[: round(0.2 * len(dist))]] = True
    return float(dist[mask].mean()), float(dist[~mask].mean())


if __name__ == "__main__":
    sys.exit(main())
