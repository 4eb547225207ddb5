"""Calibrate Identify's open-set rule: the threshold that holds FPIR at a target per gallery size.

    python -m facesvc.tools.calibrate_open_set [--cache /tmp/issue-18-cache] [--model SFace]

1. Embeds every photo of ../shared/lfw-devtrain with the in-process engine under an archive
   importer's settings (as facesvc.tools.evaluate: face selection CENTRAL, 64 px floor,
   presentation-attack stage off); embeddings are cached outside the repository.
2. The per-comparison false-match rate FMR(t) over every impostor pair (about 5.9 million
   pairs of photos of different people): the lower tail down to about 1e-6.
3. The best impostor over galleries of N identities, measured directly: for N up to
   MEASURED_MAX, many random galleries of N people (one photo each) are searched with
   a photo of a person not in them (a stranger); FPIR(N, t) is the share of strangers
   whose closest identity is at or below t.
4. Beyond the measured sizes the threshold is extrapolated from the fitted tail of FMR:
   FPIR(N, t) ~= 1 - (1 - FMR(t))^(N * k), where k (the "effective chances" factor, fitted
   on the measured sizes) absorbs the dependence between comparisons of one probe; FMR's
   lowest tail is an exponential fitted on the lowest impostor distances, so the rule has
   a value where no impostor pair was ever seen.

Prints the table and, with --write, writes facesvc/engine/matching/open_set_table.json
(the published table the engine reads), with its provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.matching.open_set import OpenSetPoint, OpenSetTable, load_tables
from facesvc.engine.pipeline.recognizers import SFaceRecognizer
from facesvc.errors import FaceServiceError
from facesvc.tools import open_set_templates
from facesvc.tools.evaluate import IMPORTER, LFW, SHARED, distance_matrix, embedding_key, tsv

TABLE = Path(__file__).resolve().parents[1] / "engine" / "matching" / "open_set_table.json"
#: The gallery sizes measured directly (sampled galleries of N people, strangers = others).
MEASURED = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
MEASURED_MAX = 2000
#: The gallery sizes the table publishes; beyond MEASURED_MAX they are extrapolated.
PUBLISHED = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
#: The FPIR targets the table publishes.
TARGETS = (0.05, 0.01, 0.001)
#: LFW folders that are one person under two names (found as the closest "impostor" pairs,
#: 0.25-0.43, and checked by name): Sepp Blatter is Joseph Blatter, Wang Nan is Nan Wang in
#: Chinese name order. Counted as impostors they would make a 0.1% FPIR at 2,000 identities
#: hinge on one person.
ALIASES = {"Joseph_Blatter": "Sepp_Blatter", "Nan_Wang": "Wang_Nan"}
#: Below this many impostor pairs the FMR's threshold comes from the fitted tail.
MIN_TAIL_PAIRS = 50


@dataclass(frozen=True)
class Embedded:
    """lfw-devtrain as the engine embedded it (rows of refused photos are NaN)."""

    names: list[str]
    identities: np.ndarray
    matrix: np.ndarray
    flipped: np.ndarray  # embeddings of the mirrored photos (a simulated burst frame), NaN if refused
    quality: np.ndarray  # quality score of each photo (NaN if refused)
    refused: Counter[str]
    model: str
    metric: str

    @property
    def accepted(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.matrix).any(axis=1))


def importer_settings(model: str = "SFace") -> Settings:
    return Settings().model_copy(update={**dict(IMPORTER), "model": model, "identify_fpir": 0.0})


def embed(folder: Path, settings: Settings, cache: Path, mirrors: bool = True) -> Embedded:
    """Every photo of IDENTITIES.tsv, and (with `mirrors`) its mirror image, through
    FaceEngine.analyse; a mirror left out is NaN."""
    key = embedding_key(folder, settings)
    path = cache / f"open-set-{folder.name}-{settings.model}-{key}{'' if mirrors else '-no-mirrors'}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        return Embedded(
            names=list(data["names"]),
            identities=np.array([ALIASES.get(str(who), str(who)) for who in data["identities"]]),
            matrix=data["matrix"],
            flipped=data["flipped"],
            quality=data["quality"],
            refused=Counter(dict(zip(data["reasons"].tolist(), data["counts"].tolist(), strict=True))),
            model=str(data["model"]),
            metric=str(data["metric"]),
        )
    engine = FaceEngine(settings)
    engine.load()
    info = engine.info()
    rows = tsv(folder / "IDENTITIES.tsv")
    matrix = np.full((len(rows), info.embedding_dim), np.nan, dtype=np.float32)
    flipped = np.full_like(matrix, np.nan)
    quality = np.full(len(rows), np.nan, dtype=np.float32)
    refused: Counter[str] = Counter()
    started = time.perf_counter()
    for index, (name, _) in enumerate(rows):
        data = (folder / name).read_bytes()
        try:
            face = engine.analyse(data)
        except FaceServiceError as error:
            refused[error.reason] += 1
            continue
        matrix[index] = face.embedding
        quality[index] = face.quality.score
        if mirrors:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            mirror = (
                cv2.imencode(".jpg", cv2.flip(pixels, 1))[1] if pixels is not None else np.zeros(0, np.uint8)
            )
            with contextlib.suppress(FaceServiceError):
                flipped[index] = engine.analyse(mirror.tobytes()).embedding
        if index % 500 == 0:
            print(f"  embedded {index}/{len(rows)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        names=np.array([name for name, _ in rows]),
        identities=np.array([who for _, who in rows]),
        matrix=matrix,
        flipped=flipped,
        quality=quality,
        reasons=np.array(list(refused) or [""])[: len(refused)],
        counts=np.array(list(refused.values()), dtype=np.int64),
        model=info.model,
        metric=info.distance_metric,
    )
    return embed(folder, settings, cache, mirrors)


def impostor_tail(embedded: Embedded) -> tuple[np.ndarray, int]:
    """Every impostor pair's distance, sorted, of the accepted photos; and the genuine count."""
    keep = embedded.accepted
    ids = embedded.identities[keep]
    distances = distance_matrix(embedded.matrix[keep], embedded.metric)
    upper = np.triu_indices(len(ids), 1)
    same = ids[upper[0]] == ids[upper[1]]
    return np.sort(distances[upper][~same]), int(same.sum())


def _by_person(embedded: Embedded) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The accepted photos' distance matrix, each photo's person (0..P-1) and each
    person's photo rows."""
    keep = embedded.accepted
    distances = distance_matrix(embedded.matrix[keep], embedded.metric).astype(np.float32)
    people, person_of = np.unique(embedded.identities[keep], return_inverse=True)
    return distances, person_of, [np.flatnonzero(person_of == k) for k in range(len(people))]


def best_impostors(embedded: Embedded, repeats: int, seed: int = 18) -> np.ndarray:
    """(probes x repeats, MEASURED_MAX): for each stranger photo and each repeat, a random
    gallery order of other people (one random photo each); entry [., N-1] is the closest
    identity among the first N, i.e. the best impostor over a gallery of N identities."""
    rng = np.random.default_rng(seed)
    distances, person_of, photos_of = _by_person(embedded)
    photos, people = len(person_of), len(photos_of)
    out = []
    for _ in range(repeats):
        template = np.array([rng.choice(rows) for rows in photos_of])  # one photo per person
        to_person = distances[:, template]  # (photos, people)
        keys = rng.random((photos, people))
        keys[np.arange(photos), person_of] = 2.0  # the probe's own person goes last: out of the gallery
        order = np.argsort(keys, axis=1)[:, :MEASURED_MAX]
        ranked = np.take_along_axis(to_person, order, axis=1)
        out.append(np.minimum.accumulate(ranked, axis=1))
    return np.concatenate(out)


def fmr_at(impostors: np.ndarray, t: float) -> float:
    return float(np.searchsorted(impostors, t, side="right") / len(impostors))


@dataclass(frozen=True)
class Tail:
    """An exponential fit of the lowest impostor distances: log FMR(t) = a + b * t."""

    a: float
    b: float
    fit_from: float  # the FMR range the fit used: [fit_from, fit_to]
    fit_to: float

    def fmr(self, t: float) -> float:
        return float(math.exp(self.a + self.b * t))

    def threshold(self, fmr: float) -> float:
        return (math.log(fmr) - self.a) / self.b


def fit_tail(impostors: np.ndarray, lowest: float = 1e-6, highest: float = 1e-3) -> Tail:
    """Least squares of log FMR against t over the impostor pairs whose FMR lies in
    [lowest, highest]: the tail the extrapolation leans on."""
    count = len(impostors)
    ranks = np.arange(max(1, int(lowest * count)), int(highest * count))
    t = impostors[ranks]
    log_fmr = np.log((ranks + 1) / count)
    b, a = np.polyfit(t, log_fmr, 1)
    return Tail(float(a), float(b), lowest, highest)


def effective_chances(best: np.ndarray, tail_fmr: object, impostors: np.ndarray) -> float:
    """k in FPIR(N, t) = 1 - (1 - FMR(t))^(k N), fitted on the measured sizes 100..MEASURED_MAX
    at the thresholds where the measured FPIR is 1%."""
    ratios = []
    for n in (100, 200, 500, 1000, MEASURED_MAX):
        t = float(np.quantile(best[:, n - 1], 0.01))
        fmr = fmr_at(impostors, t)
        ratios.append(math.log(1 - 0.01) / (n * math.log(1 - fmr)))
    return float(np.median(ratios))


def print_spread(embedded: Embedded, draws: int) -> None:
    """The shipped 1% row over fixed galleries: mean, spread and the binomial part of it."""
    table = load_tables(TABLE)[embedded.model]
    sizes = (100, 500, 1000, 1500)
    spread = gallery_spread(embedded, {n: table.threshold_for(n, 0.01) for n in sizes}, draws)
    print(f"\nFPIR of {draws} fixed galleries per size at the shipped FPIR 1% row\n")
    print("| N | threshold | strangers per gallery | mean | sd | of which binomial | p90 | p95 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, rows in spread.items():
        rates, strangers = 100 * rows[:, 0], rows[:, 1]
        binomial = 100 * math.sqrt(rates.mean() / 100 * (1 - rates.mean() / 100) / strangers.mean())
        print(
            f"| {n} | {table.threshold_for(n, 0.01):.3f} | {strangers.mean():.0f} | {rates.mean():.2f}% "
            f"| {rates.std():.2f} | {binomial:.2f} | {np.percentile(rates, 90):.2f}% "
            f"| {np.percentile(rates, 95):.2f}% | {rates.max():.2f}% |"
        )


def gallery_spread(
    embedded: Embedded, thresholds: dict[int, float], draws: int, seed: int = 16
) -> dict[int, np.ndarray]:
    """FPIR of `draws` fixed galleries per size N (N people, one random photo each), each
    searched by every photo of every person not in it, at `thresholds[N]`: what one
    company, with one gallery, sees. Its spread is the gallery's make-up plus the
    strangers' sampling (binomial: sqrt(p (1 - p) / strangers))."""
    rng = np.random.default_rng(seed)
    distances, person_of, photos_of = _by_person(embedded)
    people = len(photos_of)
    spread = {}
    for n, t in thresholds.items():
        rates = []
        for _ in range(draws):
            members = rng.choice(people, n, replace=False)
            template = np.array([rng.choice(photos_of[m]) for m in members])
            inside = np.zeros(people, dtype=bool)
            inside[members] = True
            strangers = np.flatnonzero(~inside[person_of])
            best = distances[np.ix_(strangers, template)].min(axis=1)
            rates.append((float((best <= t).mean()), len(strangers)))
        spread[n] = np.array(rates)
    return spread


def template_weights(
    embedded: Embedded, published: dict[float, list[float]], report: bool
) -> tuple[float, ...]:
    """The weights of identities with 1..5 templates over every person at the new table's
    thresholds (open_set_templates.fit_weights); with `report`, prints the cross-validated
    FPIR/FNIR with 1-3 templates."""
    points = tuple(OpenSetPoint(f, PUBLISHED, tuple(published[f])) for f in TARGETS)
    table = OpenSetTable(embedded.model, points, MEASURED_MAX, 10000, "")
    distances, person_of, photos_of = _by_person(embedded)
    people = np.arange(len(photos_of))
    weights = open_set_templates.fit_weights(
        distances, person_of, photos_of, people, open_set_templates.weight_thresholds(table)
    )
    print(f"\ntemplate weights (identities with 1..{len(weights)} templates): {weights}")
    if report:
        quality = embedded.quality[embedded.accepted]
        cap = SFaceRecognizer.default_threshold if embedded.model == "SFace" else math.inf
        print("\nFPIR 1% target, two halves of the people (weights fitted on the other half):\n")
        print("\n".join(open_set_templates.report(distances, person_of, photos_of, quality, table, cap)))
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/issue-18-cache"))
    parser.add_argument("--model", default="SFace")
    parser.add_argument("--repeats", type=int, default=10, help="random galleries per stranger photo")
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument(
        "--no-mirrors", action="store_true", help="do not embed each photo's mirror image (half the time)"
    )
    parser.add_argument("--write", action="store_true", help=f"write {TABLE.name}")
    parser.add_argument(
        "--spread",
        type=int,
        default=0,
        metavar="DRAWS",
        help="only print the FPIR of DRAWS fixed galleries per size at the shipped table's 1%% row",
    )
    parser.add_argument(
        "--templates",
        action="store_true",
        help="also print FPIR/FNIR with 1-3 templates per identity, cross-validated by person",
    )
    args = parser.parse_args(argv)
    embedded = embed(args.shared / LFW, importer_settings(args.model), args.cache, not args.no_mirrors)
    print(
        f"{embedded.model}: {int(embedded.accepted.sum())} photos embedded, refused {dict(embedded.refused)}"
    )
    if args.embed_only:
        return 0
    if args.spread:
        print_spread(embedded, args.spread)
        return 0
    impostors, genuine = impostor_tail(embedded)
    print(f"\n{len(impostors):,} impostor pairs, {genuine:,} genuine pairs\n")
    print("| FMR (per comparison) | threshold | impostor pairs at or below |\n|---|---|---|")
    for fmr in (1e-2, 1e-3, 1e-4, 1e-5, 3e-6, 1e-6):
        rank = int(fmr * len(impostors))
        if rank >= 1:
            print(f"| {fmr:g} | {impostors[rank - 1]:.4f} | {rank} |")
    tail = fit_tail(impostors)
    print(f"\ntail fit over FMR {tail.fit_from:g}..{tail.fit_to:g}: log FMR = {tail.a:.3f} + {tail.b:.3f} t")
    for fmr in (1e-5, 1e-6, 1e-7):
        print(f"  fitted threshold at FMR {fmr:g}: {tail.threshold(fmr):.4f}")
    best = best_impostors(embedded, args.repeats)
    k = effective_chances(best, tail, impostors)
    print(f"\nbest impostor over N identities, {len(best):,} stranger searches per N; k = {k:.3f}\n")
    print(
        "| N | FPIR target | measured threshold | model threshold (k N chances) | FPIR of model threshold (measured) |"
    )
    print("|---|---|---|---|---|")
    published: dict[float, list[float]] = {}
    for fpir in TARGETS:
        row = []
        for n in PUBLISHED:
            fmr = 1 - (1 - fpir) ** (1 / (k * n))
            rank = int(fmr * len(impostors))
            empirical = float(impostors[rank - 1]) if rank >= MIN_TAIL_PAIRS else tail.threshold(fmr)
            if n <= MEASURED_MAX:
                measured = float(np.quantile(best[:, n - 1], fpir))
                check = float((best[:, n - 1] <= empirical).mean())
                print(f"| {n} | {fpir:g} | {measured:.4f} | {empirical:.4f} | {100 * check:.2f}% |")
                value = min(measured, empirical)  # the stricter of the two
            else:
                print(f"| {n} | {fpir:g} | | {empirical:.4f} | |")
                value = empirical
            row.append(round(math.floor(value * 1000) / 1000, 3))
        published[fpir] = list(np.minimum.accumulate(row))  # never looser for a larger gallery
    weights = template_weights(embedded, published, args.templates)
    if args.write:
        entry = {
            "sizes": list(PUBLISHED),
            "measured_max": MEASURED_MAX,
            "extrapolated_max": 10000,
            "points": [{"fpir": fpir, "thresholds": published[fpir]} for fpir in TARGETS],
            "template_weights": list(weights),
            "provenance": (
                f"facesvc.tools.calibrate_open_set --repeats {args.repeats} on lfw-devtrain "
                f"({int(embedded.accepted.sum())} photos, importer settings; aliases {ALIASES} merged), "
                f"{len(impostors):,} impostor pairs; "
                f"N <= {MEASURED_MAX}: the stricter of the measured best-impostor quantile and the model; "
                f"above: FMR tail (exponential fit over FMR {tail.fit_from:g}..{tail.fit_to:g}) with "
                f"k = {k:.3f} effective chances per identity; template_weights: "
                f"facesvc.tools.open_set_templates.fit_weights over every person"
            ),
        }
        data = json.loads(TABLE.read_text()) if TABLE.is_file() else {"models": {}}
        data["models"][embedded.model] = entry
        TABLE.write_text(json.dumps(data, indent=1) + "\n")
        print(f"\nwrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
