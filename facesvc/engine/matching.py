"""Compare stage: distances between a live embedding and stored ones, and the
confidence figure callers see.

Confidence is a documented, monotone map of distance d for threshold t:
    d <= t : 100 - 50 * d / t            (100 at d = 0, exactly 50 at d = t)
    d >  t : 50 * max(0, 1 - (d - t) / t) (below 50, reaching 0 at d = 2t)
so `confidence >= 50` exactly when `match` (d <= t).
"""

from __future__ import annotations

import numpy as np

from facesvc.engine.types import FloatArray


def distances(live: FloatArray, gallery: FloatArray, metric: str) -> FloatArray:
    """Distance of `live` (D,) to each row of `gallery` (N, D), vectorised."""
    if metric == "euclidean":
        return np.asarray(np.linalg.norm(gallery - live[None, :], axis=1), dtype=np.float32)
    live_unit = live / max(float(np.linalg.norm(live)), 1e-12)
    norms = np.linalg.norm(gallery, axis=1)
    norms[norms < 1e-12] = 1e-12
    similarity = (gallery @ live_unit) / norms
    return np.asarray(1.0 - similarity, dtype=np.float32)


def confidence(distance: float, threshold: float) -> float:
    """0-100, monotone decreasing in distance; >= 50 exactly when distance <= threshold."""
    if distance <= threshold:
        return float(100.0 - 50.0 * max(distance, 0.0) / threshold)
    # Kept strictly below 50 even after rounding to float32 on the wire.
    return float(min(_BELOW_FIFTY, 50.0 * max(0.0, 1.0 - (distance - threshold) / threshold)))


_BELOW_FIFTY = float(np.nextafter(np.float32(50.0), np.float32(0.0)))
