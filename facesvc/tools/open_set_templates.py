"""The open-set rule with several templates per identity: what an identity with k templates
weighs (OpenSetTable.template_weights), and FPIR/FNIR with 1-3 templates, cross-validated.

A stranger gets a chance against every template, so with k templates per identity a table
that counts identities lets FPIR grow (issue 25: 1.56% at 100 identities with two, for 1%).
The weight w(k) is the number of one-template identities an identity with k templates is
worth to a stranger: w(k) = log(1 - P_k(t)) / log(1 - P_1(t)), P_k(t) the chance that the
closest of k photos of one person lies at or below t for a photo of someone else, measured
on the same people (with k photos or more) at the table's thresholds for 100-2,000
identities, and the largest value kept, at most k (the rule's N is the sum of its identities' weights).

Cross-validation by person: the people are split in two halves; the weights are fitted on
stranger/identity pairs within one half, and the galleries of the evaluation are drawn
from the other half (strangers from anywhere outside the gallery), then the halves swap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from facesvc.engine.matching.open_set import OpenSetTable, threshold_along

#: The numbers of templates per identity the weights are fitted for.
MAX_TEMPLATES = 5
#: Random k-photo subsets drawn per person for P_k.
SUBSETS = 20
#: The gallery sizes whose thresholds the weights are fitted at.
FIT_SIZES = (100, 200, 500, 1000, 2000)


def fit_weights(
    distances: np.ndarray,
    person_of: np.ndarray,
    photos_of: Sequence[np.ndarray],
    people: np.ndarray,
    thresholds: Sequence[float],
    seed: int = 25,
) -> tuple[float, ...]:
    """w(1..MAX_TEMPLATES) over the pairs within `people` (stranger photos and identities
    both among them), at each of `thresholds`; the largest over thresholds, never below
    the previous k's, rounded up to 2 decimals."""
    rng = np.random.default_rng(seed)
    inside = np.zeros(len(photos_of), dtype=bool)
    inside[people] = True
    weights = [1.0]
    for k in range(2, MAX_TEMPLATES + 1):
        eligible = [p for p in people if len(photos_of[p]) >= k]
        single = np.zeros(len(thresholds))
        multi = np.zeros(len(thresholds))
        trials = 0
        for person in eligible:
            rows = photos_of[person]
            strangers = np.flatnonzero(inside[person_of] & (person_of != person))
            block = distances[np.ix_(strangers, rows)]  # (strangers, photos of the person)
            for _ in range(SUBSETS):
                subset = rng.choice(len(rows), k, replace=False)
                best = block[:, subset].min(axis=1)
                one = block[:, subset[0]]
                for j, t in enumerate(thresholds):
                    multi[j] += float((best <= t).sum())
                    single[j] += float((one <= t).sum())
                trials += len(strangers)
        ratios = [
            math.log(1 - m / trials) / math.log(1 - s / trials)
            for m, s in zip(multi, single, strict=True)
            if s >= 20
        ]
        # Never above k: by the union bound, k templates give a stranger at most k chances
        # (a larger ratio is the sampling noise of the few people with k photos or more).
        weight = min(max([*ratios, weights[-1]]), float(k))
        weights.append(math.ceil(weight * 100) / 100)
    return tuple(weights)


def weight_thresholds(table: OpenSetTable, fpirs: Sequence[float] = (0.05, 0.01)) -> list[float]:
    """The table's thresholds the weights are fitted at (FIT_SIZES at `fpirs`)."""
    return [table.threshold_for(n, fpir) for fpir in fpirs for n in FIT_SIZES]


def gallery_weight(counts: np.ndarray, weights: Sequence[float]) -> int:
    """The rule's N for identities with `counts` templates (open_set.counted's sum)."""
    values = np.asarray(weights)[np.clip(counts, 1, len(weights)) - 1]
    return max(len(counts), math.ceil(float(values.sum()) - 1e-6))


def evaluate(
    distances: np.ndarray,
    person_of: np.ndarray,
    photos_of: Sequence[np.ndarray],
    quality: np.ndarray,
    people: np.ndarray,
    table: OpenSetTable,
    weights: Sequence[float],
    templates: int,
    size: int,
    cap: float,
    fpir: float = 0.01,
    draws: int = 10,
    seed: int = 250,
) -> tuple[int, int, int, int]:
    """(false positives, strangers, false negatives, employees) over `draws` galleries of
    `size` people drawn from `people`: a person with more than `templates` photos gets
    `templates` of them (chosen as Enroll chooses: best quality, then the farthest), the
    others all their photos but one (one if they have one); the rest of an employee's
    photos are its probes, every photo of a person outside the gallery a stranger."""
    rng = np.random.default_rng(seed + 7 * templates + size)
    fp = strangers = fn = employees = 0
    for _ in range(draws):
        members = rng.choice(people, min(size, len(people)), replace=False)
        columns: list[int] = []
        owner: list[int] = []
        probes: list[tuple[int, int]] = []
        for m in members:
            rows = photos_of[m]
            keep = max(1, min(templates, len(rows) - 1))
            chosen = choose_rows(rows, quality, distances, keep)
            columns.extend(chosen)
            owner.extend([m] * len(chosen))
            probes.extend((r, m) for r in rows if r not in chosen)
        cols, owners = np.array(columns), np.array(owner)
        counts = np.bincount(np.unique(owners, return_inverse=True)[1])
        n = gallery_weight(counts, weights)
        t = min(threshold_along(table.points[0].sizes, _row(table, fpir), n), cap)
        inside = np.zeros(len(photos_of), dtype=bool)
        inside[members] = True
        outside = np.flatnonzero(~inside[person_of])
        fp += int((distances[np.ix_(outside, cols)].min(axis=1) <= t).sum())
        strangers += len(outside)
        if probes:
            rows = np.array([r for r, _ in probes])
            who = np.array([m for _, m in probes])
            block = distances[np.ix_(rows, cols)]
            best = block.argmin(axis=1)
            right = (owners[best] == who) & (block[np.arange(len(rows)), best] <= t)
            fn += int((~right).sum())
            employees += len(rows)
    return fp, strangers, fn, employees


def _row(table: OpenSetTable, fpir: float) -> tuple[float, ...]:
    point = table.point(fpir)
    assert point is not None
    return point.thresholds


def choose_rows(rows: np.ndarray, quality: np.ndarray, distances: np.ndarray, count: int) -> list[int]:
    """facesvc.engine.templates.enrolment.choose over photo rows: the best quality first,
    then each time the photo farthest from those chosen."""
    chosen = [int(rows[np.argmax(quality[rows])])]
    while len(chosen) < min(count, len(rows)):
        rest = [int(r) for r in rows if r not in chosen]
        nearest = distances[np.ix_(rest, chosen)].min(axis=1)
        chosen.append(rest[int(np.argmax(nearest))])
    return chosen


def report(
    distances: np.ndarray,
    person_of: np.ndarray,
    photos_of: Sequence[np.ndarray],
    quality: np.ndarray,
    table: OpenSetTable,
    cap: float,
    seed: int = 25,
) -> list[str]:
    """Markdown lines: the weights of each half, and FPIR/FNIR at the 1% target with 1, 2, 3
    templates at 100/500/1000/all identities of the other half, summed over both halves."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(photos_of))
    halves = (np.sort(order[::2]), np.sort(order[1::2]))
    thresholds = weight_thresholds(table)
    fitted = [fit_weights(distances, person_of, photos_of, half, thresholds) for half in halves]
    lines = [f"weights fitted on half {i}: {', '.join(f'{w:g}' for w in ws)}" for i, ws in enumerate(fitted)]
    lines += [
        "",
        "| templates | identities | FPIR (rule by identities) | FNIR | FPIR (weighted rule) | FNIR |",
        "|---|---|---|---|---|---|",
    ]
    for templates in (1, 2, 3):
        for size in (100, 500, 1000, 0):
            plain = np.zeros(4)
            weighted = np.zeros(4)
            for half, other in ((1, 0), (0, 1)):
                people = halves[half]
                n = size or len(people)
                args = (distances, person_of, photos_of, quality, people, table)
                plain += evaluate(*args, (1.0,) * 5, templates, n, cap)
                weighted += evaluate(*args, fitted[other], templates, n, cap)
            label = str(size) if size else f"all (~{len(halves[0])})"
            lines.append(
                f"| {templates} | {label} | {100 * plain[0] / plain[1]:.2f}% | {100 * plain[2] / plain[3]:.2f}% "
                f"| {100 * weighted[0] / weighted[1]:.2f}% | {100 * weighted[2] / weighted[3]:.2f}% |"
            )
    return lines
