"""One person, one face: the identities of a gallery given to the faces of one photo jointly.

Each face alone would take its closest identity below the threshold (Identify's open-set
rule). In a photo two faces may both fall below the line of the same identity (twins, a
look-alike, a blurred face); a person is in a photo at most once, so at most one of them
may have the name. The assignment is the one with the largest total margin below the
threshold, sum(threshold - distance) over the pairs given (the linear assignment problem,
solved exactly by scipy's linear_sum_assignment): a face that loses an identity to a face
closer to it gets its next identity below the threshold, or none.

Only pairs at or below the threshold can be given, so a face is named only when Identify
alone would have named it (some identity lies below its line): the assignment can remove
a name or swap one below-threshold name for another, never add one, and the FPIR of a
stranger's face is at most the published one (docs/IDENTIFY.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from facesvc.engine.types import FloatArray


@dataclass(frozen=True, slots=True)
class IdentityTable:
    """The distances of F faces to each of I distinct identities (its closest template)."""

    ids: list[str]
    distances: FloatArray  # (F, I)


def per_identity(ids: Sequence[str], distances: FloatArray) -> IdentityTable:
    """(F, R) distances to R gallery rows -> (F, I): per identity, the closest of its rows."""
    names, inverse = np.unique(np.asarray(ids, dtype=object).astype(str), return_inverse=True)
    matrix = np.atleast_2d(distances)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(names)))
    best = np.minimum.reduceat(matrix[:, order], starts, axis=1)
    return IdentityTable([str(n) for n in names], np.asarray(best, dtype=np.float32))


def assign(distances: FloatArray, threshold: float) -> list[int | None]:
    """For each face (row), the column of the identity it is given, or None: each column
    to at most one row, only pairs at or below `threshold`, the total margin maximal."""
    faces = distances.shape[0]
    allowed = distances <= threshold
    if faces == 0 or not allowed.any():
        return [None] * faces
    columns = np.flatnonzero(allowed.any(axis=0))  # identities some face may be given
    margin = np.where(allowed[:, columns], threshold - distances[:, columns], 0.0)
    # A margin of exactly 0 (distance == threshold) is still a match: lift every allowed
    # pair above the "not given" pairs by a hair that cannot reorder real margins.
    gain = np.where(allowed[:, columns], margin + 1e-9, 0.0)
    rows, picked = linear_sum_assignment(gain, maximize=True)
    given: list[int | None] = [None] * faces
    for row, column in zip(rows.tolist(), picked.tolist(), strict=True):
        if allowed[row, columns[column]]:
            given[row] = int(columns[column])
    return given
