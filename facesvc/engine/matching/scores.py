"""Compare stage: distances between a live embedding and stored ones, and the
confidence figure callers see.

Confidence is a documented, monotone map of distance d for threshold t:
    d <= t : 100 - 50 * d / t            (100 at d = 0, exactly 50 at d = t)
    d >  t : 50 * max(0, 1 - (d - t) / t) (below 50, reaching 0 at d = 2t)
so `confidence >= 50` exactly when `match` (d <= t).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from facesvc.engine.types import FloatArray


def row_norms(gallery: FloatArray) -> FloatArray:
    """Each row's Euclidean norm, without an (N, D) temporary: einsum sums the squares in
    one pass (NaN or inf for a row holding one; inf, too, for values past ~1e19)."""
    return np.asarray(np.sqrt(np.einsum("ij,ij->i", gallery, gallery)), dtype=np.float32)


def distances(
    live: FloatArray, gallery: FloatArray, metric: str, norms: FloatArray | None = None
) -> FloatArray:
    """Distance of `live` (D,) to each row of `gallery` (N, D), vectorised; `norms` are the
    rows' norms when already known (row_norms)."""
    distance: FloatArray = distances_of(live[np.newaxis, :], gallery, metric, norms)[0]
    return distance


def distances_of(
    lives: FloatArray, gallery: FloatArray, metric: str, norms: FloatArray | None = None
) -> FloatArray:
    """(F, N): the distance of each of F live embeddings (F, D) to each row of `gallery`,
    with one pass over the gallery for all of them (a burst's frames)."""
    if metric == "euclidean":
        return np.asarray(
            np.stack([np.linalg.norm(gallery - live[np.newaxis, :], axis=1) for live in lives]),
            dtype=np.float32,
        )
    lengths = np.maximum(np.linalg.norm(lives, axis=1, keepdims=True), 1e-12)
    units = (lives / lengths).astype(np.float32, copy=False)
    row = row_norms(gallery) if norms is None else norms
    row = np.maximum(row, 1e-12)
    similarity = (gallery @ units.T).T / row[np.newaxis, :]
    return np.asarray(1.0 - similarity, dtype=np.float32)


def nearest_first(dists: FloatArray, wanted: int) -> Iterator[int]:
    """Row indices by increasing distance, ties in row order (a stable argsort), lazily:
    the closest few rows are found with a partition and sorted, and the rest of the
    gallery is sorted only if the caller reads past them (duplicate ids among the
    closest rows). `wanted` is how many rows the caller expects to read."""
    count = len(dists)
    head = 4 * wanted + 32
    if head >= count:
        yield from np.argsort(dists, kind="stable").tolist()
        return
    cutoff = np.partition(dists, head - 1)[head - 1]
    for rows in (np.flatnonzero(dists <= cutoff), np.flatnonzero(dists > cutoff)):
        yield from rows[np.argsort(dists[rows], kind="stable")].tolist()


def confidence(distance: float, threshold: float) -> float:
    """0-100, monotone decreasing in distance; >= 50 exactly when distance <= threshold."""
    if distance <= threshold:
        return float(100.0 - 50.0 * max(distance, 0.0) / threshold)
    # Kept strictly below 50 even after rounding to float32 on the wire.
    return float(min(_BELOW_FIFTY, 50.0 * max(0.0, 1.0 - (distance - threshold) / threshold)))


_BELOW_FIFTY = float(np.nextafter(np.float32(50.0), np.float32(0.0)))
