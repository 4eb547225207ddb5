"""Identify's open-set rule: the threshold that holds a stranger's false-positive rate (FPIR)
at a published target, whatever the number of identities in the gallery.

A stranger searched against N identities gets N chances to fall below one fixed line, so
a fixed line's FPIR grows with N (issue 18: 8.7% at 100 identities, 86% at 3,732 with
Verify's threshold). The table in open_set_table.json (written by
facesvc.tools.calibrate_open_set, provenance inside) gives, per model and per FPIR target,
the threshold for a few gallery sizes N; between them the threshold is interpolated
linearly in log N, beyond the largest it keeps falling along the last segment's slope.
Sizes up to `measured_max` were measured directly (sampled galleries, strangers = other
people); above that the figures are extrapolated from the impostor tail (see the tool).

The decision: per identity, the closest of its templates; with several frames of one
person (a burst), each template's distances are averaged over the frames first. The best
identity matches when its distance is at or below threshold_for(N, fpir), N being the
gallery's identities each weighted by its number of templates (template_weights: with two
templates, a stranger has about 1.7 chances against that person instead of one; issue 25
measured FPIR 1.56% at 100 identities for a 1% target when they were counted once).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from facesvc.engine.matching import scores
from facesvc.engine.types import FloatArray, IdentityMatch, OpenSetInfo
from facesvc.errors import EmbeddingInvalidError

TABLE_PATH = Path(__file__).with_name("open_set_table.json")
#: The most frames one Identify decides together (a kiosk's burst is 2-5 frames).
MAX_FRAMES = 5


@dataclass(frozen=True, slots=True)
class OpenSetPoint:
    """One published FPIR target and its thresholds over gallery sizes."""

    fpir: float
    sizes: tuple[int, ...]
    thresholds: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class OpenSetTable:
    """A model's open-set calibration."""

    model: str
    points: tuple[OpenSetPoint, ...]
    #: Gallery sizes up to this were measured directly; above it, extrapolated.
    measured_max: int
    #: Gallery sizes above this are beyond the table's stated validity.
    extrapolated_max: int
    provenance: str
    #: What an identity with k templates counts for (entry k - 1; see template_weight).
    template_weights: tuple[float, ...] = (1.0,)

    def template_weight(self, templates: int) -> float:
        """The number of one-template identities an identity with `templates` templates
        weighs: a stranger gets a chance against each of its templates, fewer than k
        independent ones since they are of one face. Beyond the table, the last step goes on."""
        weights = self.template_weights
        if templates <= len(weights):
            return weights[max(templates, 1) - 1]
        step = weights[-1] - weights[-2] if len(weights) > 1 else 1.0
        return weights[-1] + step * (templates - len(weights))

    @property
    def fpirs(self) -> tuple[float, ...]:
        return tuple(p.fpir for p in self.points)

    def point(self, fpir: float) -> OpenSetPoint | None:
        """The published point for `fpir` (float32 on the wire: matched within 1e-4)."""
        return next((p for p in self.points if math.isclose(p.fpir, fpir, rel_tol=1e-4)), None)

    def threshold_for(self, n_identities: int, fpir: float) -> float:
        """The distance threshold holding FPIR at `fpir` over a gallery of `n_identities`
        distinct identities. Raises KeyError for an unpublished fpir."""
        point = self.point(fpir)
        if point is None:
            raise KeyError(fpir)
        return threshold_along(point.sizes, point.thresholds, n_identities)


def threshold_along(sizes: Sequence[int], thresholds: Sequence[float], n_identities: int) -> float:
    """Linear in log N between the published sizes; below the first size its threshold,
    above the last the last segment's slope continues."""
    n = max(1, int(n_identities))
    logs = np.log(np.asarray(sizes, dtype=np.float64))
    values = np.asarray(thresholds, dtype=np.float64)
    x = math.log(n)
    if x <= logs[0]:
        return float(values[0])
    if x >= logs[-1] and len(logs) > 1:
        slope = (values[-1] - values[-2]) / (logs[-1] - logs[-2])
        return float(max(values[-1] + slope * (x - logs[-1]), 1e-6))
    return float(np.interp(x, logs, values))


@cache
def load_tables(path: Path = TABLE_PATH) -> dict[str, OpenSetTable]:
    """Every model's table from the shipped JSON file."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    tables = {}
    for model, entry in data["models"].items():
        points = tuple(
            OpenSetPoint(
                float(p["fpir"]), tuple(int(s) for s in entry["sizes"]), tuple(map(float, p["thresholds"]))
            )
            for p in entry["points"]
        )
        tables[model] = OpenSetTable(
            model=model,
            points=points,
            measured_max=int(entry["measured_max"]),
            extrapolated_max=int(entry["extrapolated_max"]),
            provenance=str(entry["provenance"]),
            template_weights=tuple(map(float, entry.get("template_weights", (1.0,)))),
        )
    return tables


def table_for(model: str) -> OpenSetTable | None:
    """The open-set table of `model`, or None when the model was not calibrated here."""
    return load_tables().get(model)


@dataclass(frozen=True, slots=True)
class IdentityScores:
    """Per distinct identity, its fused distance: identities in first-seen order."""

    ids: list[str]
    distances: FloatArray  # (I,), one per identity: the closest of its templates
    rows: np.ndarray  # (I,), the row of that closest template


def fuse_frames(frame_distances: FloatArray) -> FloatArray:
    """(F, R) distances of F frames of one person to R templates -> (R,): the mean over the
    frames (measured on lfw-devtrain against the minimum: see docs/IDENTIFY.md)."""
    matrix = np.atleast_2d(frame_distances)
    return np.asarray(matrix.mean(axis=0), dtype=np.float32)


def per_identity(ids: Sequence[str], distances: FloatArray) -> IdentityScores:
    """Each distinct identity's closest template (ties: the first row)."""
    names, inverse = np.unique(np.asarray(ids, dtype=object).astype(str), return_inverse=True)
    order = np.lexsort((np.arange(len(distances)), distances))  # by distance, then row
    best_rows = np.full(len(names), -1, dtype=np.int64)
    seen = inverse[order]
    _, first = np.unique(seen, return_index=True)
    best_rows[seen[first]] = order[first]
    return IdentityScores(
        ids=[str(n) for n in names],
        distances=np.asarray(distances[best_rows], dtype=np.float32),
        rows=best_rows,
    )


def count_identities(ids: Sequence[str]) -> int:
    """The number of distinct identities."""
    return len(set(ids))


@dataclass(frozen=True, slots=True)
class Counted:
    """A gallery's size: its distinct identities, and the N of the open-set rule (each
    identity weighted by its number of templates, rounded up)."""

    identities: int
    weight: int


def counted(ids: Sequence[str], table: OpenSetTable | None) -> Counted:
    """Count a gallery once, linear in its rows."""
    identities = count_identities(ids)
    if table is None or identities == len(ids):
        return Counted(identities, identities)
    per_count = Counter(Counter(ids).values())  # templates per identity -> identities
    total = sum(table.template_weight(k) * n for k, n in per_count.items())
    return Counted(identities, max(identities, math.ceil(total - 1e-6)))


@dataclass(frozen=True, slots=True)
class OpenSetRule:
    """Identify's default threshold for a gallery: the table's line for its number of
    identities at the FPIR asked for (a published point), never looser than Verify's
    threshold `cap` (the table's line is above it below ~10 identities: a small gallery is
    not searched more loosely than a 1:1 check)."""

    table: OpenSetTable
    default_fpir: float
    cap: float

    def threshold(self, identities: int, fpir: float | None = None) -> tuple[float, float]:
        """(threshold, the FPIR target it holds); EmbeddingInvalidError for an unpublished fpir."""
        target = self.default_fpir if fpir is None else fpir
        if self.table.point(target) is None:
            published = ", ".join(f"{f:g}" for f in self.table.fpirs)
            raise EmbeddingInvalidError(
                f"fpir {target:g} is not a published point of this model ({published}).",
                fpir=target,
                published=published,
            )
        return min(self.table.threshold_for(identities, target), self.cap), target

    def info(self) -> OpenSetInfo:
        """The rule as Health publishes it."""
        return OpenSetInfo(
            default_fpir=self.default_fpir,
            fpirs=self.table.fpirs,
            sizes=self.table.points[0].sizes,
            thresholds=tuple(p.thresholds for p in self.table.points),
            measured_max=self.table.measured_max,
            extrapolated_max=self.table.extrapolated_max,
            template_weights=self.table.template_weights,
        )


def rank(ids: Sequence[str], distances: FloatArray, top_k: int, limit: float) -> tuple[IdentityMatch, ...]:
    """The closest `top_k` identities (at least one), each once, by its closest row (ties:
    the first row); a match when its distance is at or below `limit`."""
    wanted = max(top_k, 1)
    ranked: list[IdentityMatch] = []
    seen: set[str] = set()
    for row in scores.nearest_first(distances, wanted):
        identity = ids[row]
        if identity in seen:
            continue
        seen.add(identity)
        distance = float(distances[row])
        ranked.append(
            IdentityMatch(identity, distance, scores.confidence(distance, limit), distance <= limit)
        )
        if len(ranked) == wanted:
            break
    return tuple(ranked)
