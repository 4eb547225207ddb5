"""`make eval`'s 1:N table: Identify at a company's scale on lfw-devtrain, through the real API.

Protocol (docs/IDENTIFY.md): LFW people are split by person into 10 folds (seeded). In fold
k the people of fold k are strangers (every photo of theirs is a stranger probe); everyone
else is the company's pool. A gallery of N identities is N people of the pool (a seeded
random order, the first N), each enrolled with its first photo (by file name): one packed
template per person, or two (first two photos) where the person has three or more.
Employees are gallery members with a photo left over: the last photo is the probe; where
four or more, the last three photos are a real 3-frame burst (more_images). Strangers'
bursts are three real photos of one stranger (those with three or more). Two LFW folders
that are one person under two names are merged (calibrate_open_set.ALIASES).

Every photo is enrolled once through Enroll (importer settings: face selection CENTRAL,
64 px floor, presentation-attack stage off). Fold 0 is then searched with real Identify
calls (packed galleries, top_k 2, the defaults: no threshold, no fpir), so FPIR and FNIR
"as served" are the server's own answers; FNIR at FPIR 1% and 0.1% is read from the same
answers' distances at the open-set thresholds of those points (Health.open_set). All 10
folds are replayed offline from the enrolled embeddings with the same rule
(facesvc.engine.matching.open_set), for tighter rates; fold 0's replay is checked against
the served answers (agreement is printed). A probe the service refuses (no face, ...)
counts as not found for an employee and is not counted for a stranger.

This is development data (lfw-devtrain): the issue's held-out LFW people are not here.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from facesvc.config import Settings
from facesvc.engine.matching import open_set, scores
from facesvc.tools.calibrate_open_set import ALIASES
from facesvc.tools.evaluate import IMPORTER, LFW, SHARED, Embedded, _cached, embed_set, serving
from facesvc.v1 import face_service_pb2 as pb

FOLDS = 10
SEED = 18
SIZES = (100, 500, 1000, 0)  # 0: the whole pool of the fold (about 1,900 identities)


@dataclass
class Split:
    """One fold: the pool in gallery order and the strangers, as photo rows per person."""

    pool: list[list[int]]  # per pool person (gallery order), their accepted photo rows, by name
    strangers: list[list[int]]


def split(embedded: Embedded, fold: int) -> Split:
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row in np.flatnonzero(embedded.accepted):
        who = str(embedded.identities[row])
        rows_of[ALIASES.get(who, who)].append(int(row))
    people = sorted(rows_of)
    order = np.random.default_rng(SEED).permutation(len(people))
    fold_of = {people[i]: rank % FOLDS for rank, i in enumerate(order)}
    pool = [p for p in people if fold_of[p] != fold]
    pool = [pool[i] for i in np.random.default_rng(SEED + 1 + fold).permutation(len(pool))]
    strangers = [p for p in people if fold_of[p] == fold]
    by_name = embedded.names
    return Split(
        pool=[sorted(rows_of[p], key=lambda r: by_name[r]) for p in pool],
        strangers=[sorted(rows_of[p], key=lambda r: by_name[r]) for p in strangers],
    )


@dataclass
class Case:
    """A probe (1 or 3 photos) and whom it shows ("" for a stranger)."""

    rows: list[int]
    truth: str
    kind: str  # "employee" / "stranger"
    photos: int = 0  # how many photos the person has


@dataclass
class Gallery:
    ids: list[str]
    rows: list[int]


def gallery(split: Split, size: int, templates: int) -> tuple[Gallery, list[Case], list[Case]]:
    """The gallery of the first `size` pool people; the single-frame and burst cases."""
    people = split.pool[: size or len(split.pool)]
    ids, rows, single, burst = [], [], [], []
    for index, photos in enumerate(people):
        name = f"p{index}"
        enrolled = photos[: min(templates, max(1, len(photos) - 1))]
        ids += [name] * len(enrolled)
        rows += enrolled
        if len(photos) >= 2:
            single.append(Case([photos[-1]], name, "employee", len(photos)))
        if len(photos) >= 4:
            burst.append(Case(photos[-3:], name, "employee", len(photos)))
    single += [Case([r], "", "stranger") for photos in split.strangers for r in photos]
    burst += [Case(photos[-3:], "", "stranger") for photos in split.strangers if len(photos) >= 3]
    return Gallery(ids, rows), single, burst


@dataclass
class Answer:
    """The top-2 of one probe: (id, distance) pairs; None when refused."""

    top: list[tuple[str, float]] | None
    threshold: float = 0.0


@dataclass
class Tally:
    """Counts for one row of the table."""

    employees: int = 0
    strangers: int = 0
    not_found: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per rule
    false_pos: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wrong: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # employee given as someone else
    refused: int = 0


def replay(embedded: Embedded, g: Gallery, case: Case, metric: str) -> Answer:
    """The engine's rule, offline: per row distance (mean over frames), per identity min."""
    matrix = embedded.matrix[g.rows]
    frames = np.stack([scores.distances(embedded.matrix[r], matrix, metric) for r in case.rows])
    per = open_set.per_identity(g.ids, open_set.fuse_frames(frames))
    order = np.argsort(per.distances, kind="stable")[:2]
    return Answer([(per.ids[i], float(per.distances[i])) for i in order])


def served(stub: object, images: Sequence[bytes], g: Gallery, values: bytes, model: str) -> Answer:
    request = pb.IdentifyRequest(
        image=images[0],
        more_images=list(images[1:]),
        top_k=2,
        packed_candidates=pb.PackedGallery(ids=g.ids, values=values, model=model),
    )
    try:
        response = stub.Identify(request, timeout=120)  # type: ignore[attr-defined]
    except grpc.RpcError:
        return Answer(None)
    return Answer([(m.id, m.distance) for m in response.matches], response.threshold)


def count(tally: Tally, case: Case, answer: Answer, limits: dict[str, float]) -> None:
    if case.kind == "employee":
        tally.employees += 1
    else:
        if answer.top is None:
            return
        tally.strangers += 1
    if answer.top is None:
        tally.refused += 1
        for rule in limits:
            tally.not_found[rule] += 1
        return
    best_id, best = answer.top[0]
    for rule, limit in limits.items():
        hit = best <= limit
        if case.kind == "stranger":
            tally.false_pos[rule] += hit
        elif not hit:
            tally.not_found[rule] += 1
        elif best_id != case.truth:
            tally.not_found[rule] += 1
            tally.wrong[rule] += 1


def refusal_table(embedded: Embedded, table: open_set.OpenSetTable, fpir: float, metric: str) -> None:
    """Refuse rather than guess (FACESVC_IDENTIFY_UNDECIDED_MARGIN): the whole pool of each
    fold, one template, one frame, replayed; a probe whose best distance lies within the
    margin of the threshold is refused; FPIR and FNIR are over the probes not refused."""
    cases: list[tuple[bool, float, bool]] = []  # (employee, best - threshold, best is the truth)
    for fold in range(FOLDS):
        g, single, _ = gallery(split(embedded, fold), 0, 1)
        limit = table.threshold_for(len(set(g.ids)), fpir)
        for case in single:
            top = replay(embedded, g, case, metric).top
            assert top is not None
            cases.append((case.kind == "employee", top[0][1] - limit, top[0][0] == case.truth))
    employee = np.array([c[0] for c in cases])
    gap = np.array([c[1] for c in cases])
    truth = np.array([c[2] for c in cases])
    print(
        f"\n### Refuse rather than guess (whole pool, 1 template, 1 frame, {FOLDS} folds replayed)\n\n"
        "| margin | employees refused | strangers refused | FPIR (not refused) | FNIR (not refused) "
        "| employees not identified (refused or not found) |\n|---|---|---|---|---|---|"
    )
    for margin in (0.0, 0.01, 0.02, 0.03, 0.05):
        refused = (np.abs(gap) <= margin) if margin else np.zeros(len(gap), dtype=bool)
        match = (gap <= 0) & ~refused
        fp = int((match & ~employee).sum())
        fn = int((employee & ~refused & ~(match & truth)).sum())
        print(
            f"| {margin:g} | {pct(int((refused & employee).sum()), int(employee.sum()))} "
            f"| {pct(int((refused & ~employee).sum()), int((~employee).sum()))} "
            f"| {pct(fp, int((~employee & ~refused).sum()))} | {pct(fn, int((employee & ~refused).sum()))} "
            f"| {pct(fn + int((refused & employee).sum()), int(employee.sum()))} |"
        )


def pct(part: int, whole: int) -> str:
    return f"{100 * part / max(whole, 1):.2f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument(
        "--cache", type=Path, help="keep Enroll's embeddings here between runs (outside the repo)"
    )
    parser.add_argument("--served-folds", type=int, default=1, help="folds searched with real Identify calls")
    parser.add_argument(
        "--sets", nargs="*", default=[LFW], help="as evaluate's; runs when it names lfw-devtrain"
    )
    args = parser.parse_args(argv)
    folder = args.shared / LFW
    if LFW not in args.sets:
        return 0
    if not (folder / "IDENTITIES.tsv").is_file():
        print(f"{folder} missing: no 1:N table")
        return 0
    settings = Settings().model_copy(update=dict(IMPORTER))
    with serving(settings) as stub:
        health = stub.Health(pb.HealthRequest(), timeout=30)
        embedded = _cached(folder, settings, args.cache, lambda: embed_set(stub, folder))
        rule = health.open_set
        fpirs = list(rule.fpirs)
        table = open_set.table_for(health.model)
        assert table is not None, f"{health.model} has no open-set table"
        print(
            f"\n## Identify, 1:N on lfw-devtrain (development data), {health.model}: default FPIR "
            f"{100 * rule.default_fpir:g}%; {FOLDS} folds by person, fold 0 served through Identify\n"
        )
        header = (
            "| gallery (identities) | templates / frames | source | employee probes | stranger probes "
            "| threshold | FPIR as served | FNIR as served | FNIR at FPIR 1% | FNIR at FPIR 0.1% "
            "| employees answered as someone else |\n|---|---|---|---|---|---|---|---|---|---|---|"
        )
        print(header)
        agreement = [0, 0]
        photos = [(folder / name).read_bytes() for name in embedded.names] if args.served_folds else []
        for size in SIZES:
            # (templates, burst, employees with at least this many photos): each evidence row
            # after its 1-template, 1-frame baseline on the same people.
            for templates, burst, least in (
                (1, False, 2),
                (1, False, 3),
                (2, False, 3),
                (1, False, 4),
                (1, True, 4),
            ):
                tallies = {"replay": Tally(), "served": Tally()}
                n_ids = 0
                for fold in range(FOLDS):
                    s = split(embedded, fold)
                    g, single, bursts = gallery(s, size, templates)
                    n_ids = len(set(g.ids))
                    cases = bursts if burst else single
                    cases = [c for c in cases if c.kind == "stranger" or c.photos >= least]
                    limits = {f"{f:g}": table.threshold_for(n_ids, f) for f in fpirs}
                    values = embedded.matrix[g.rows].astype("<f4").tobytes()
                    for case in cases:
                        offline = replay(embedded, g, case, health.distance_metric)
                        count(tallies["replay"], case, offline, limits)
                        if fold < args.served_folds and (
                            (size == 0 and (least == 2 or templates == 2 or burst)) or least == 2
                        ):
                            answer = served(stub, [photos[r] for r in case.rows], g, values, health.model)
                            count(tallies["served"], case, answer, limits)
                            if answer.top is not None and offline.top is not None:
                                agreement[0] += (
                                    answer.top[0][0] == offline.top[0][0]
                                    and abs(answer.top[0][1] - offline.top[0][1]) < 1e-4
                                )
                                agreement[1] += 1
                default = f"{rule.default_fpir:g}"
                label = (
                    f"{templates} template{'s' if templates > 1 else ''}"
                    + (", 3-frame burst" if burst else ", 1 frame")
                    + (f" (people with {least}+ photos)" if least > 2 else "")
                )
                for source, tally in tallies.items():
                    if not tally.employees:
                        continue
                    fp = {k: tally.false_pos[k] for k in limits}
                    print(
                        f"| {n_ids if size else f'~{n_ids}'} | {label} | {source} "
                        f"| {tally.employees} | {tally.strangers} | {limits[default]:.3f} "
                        f"| {pct(fp[default], tally.strangers)} | {pct(tally.not_found[default], tally.employees)} "
                        f"| {pct(tally.not_found.get('0.01', 0), tally.employees)} "
                        f"| {pct(tally.not_found.get('0.001', 0), tally.employees)} "
                        f"| {tally.wrong[default]} |",
                        flush=True,
                    )
        refusal_table(embedded, table, rule.default_fpir, health.distance_metric)
        if agreement[1]:
            print(
                f"\nserved vs replay: {agreement[0]}/{agreement[1]} answers agree (same best id and distance)"
            )
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"\n({time.perf_counter() - started:.0f} s)")
    sys.exit(code)
