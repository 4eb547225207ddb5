"""The presentation-attack stage's fusion: one calibrated live score from the signals.

A logistic regression on a few standardised signal values (facesvc.engine.pipeline.
attack_signals), capped by MiniFASNet's own probability (a min rule: the stage says live
only when MiniFASNet and the fusion both do, so the added evidence can refuse more than
MiniFASNet alone but never pass what it refuses), its handful of weights fitted by `python -m facesvc.tools.calibrate_pad
--write` on every development source in ../shared/pad and chosen by leave-one-source-out
(docs/PRESENTATION_ATTACK_SIGNALS.md has the table). The bias is shifted so that the
stage's threshold (0.5 by default) sits at the operating point calibration chose. The
file ships in the package and is checked against its SHA-256 at load: a changed number
is a changed stage.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facesvc.engine.runtime import licences
from facesvc.errors import ModelUnavailableError

FUSION_FILE = Path(__file__).resolve().parents[2] / "models" / "attack_fusion" / "fusion.json"
FUSION_SHA256 = licences.sha256_of("fusion.json")


def feature_value(name: str, raw: float) -> float:
    """A signal's value as the fusion weighs it: MiniFASNet's probability as a logit, the
    counts that span decades (glare, edges, spectral energy) on a log scale."""
    if name.startswith("minifasnet"):
        p = min(max(raw, 1e-4), 1 - 1e-4)
        return math.log(p / (1 - p))
    if name in {"glare", "device_edges", "high_frequency"}:
        return math.log(raw + 1e-3)
    return raw


@dataclass(frozen=True)
class Fusion:
    """Weights per signal over standardised values, and the live/attack LBP references."""

    features: tuple[str, ...]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    bias: float
    framing: str
    live_reference: npt.NDArray[np.float64]
    attack_reference: npt.NDArray[np.float64]
    #: A signal whose own probability also caps the live score ("" for none): the fused
    #: score can then only refuse more than that signal alone, never pass what it refuses.
    capped_by: str = ""

    def contributions(self, raw: Mapping[str, float]) -> dict[str, float]:
        """Each signal's share of the fused logit (positive: towards live)."""
        values = np.array([feature_value(name, raw[name]) for name in self.features])
        z = (values - self.mean) / self.scale
        return {name: float(w * v) for name, w, v in zip(self.features, self.weights, z, strict=True)}

    def fused_score(self, raw: Mapping[str, float]) -> float:
        """The logistic fusion's live probability, 0-1."""
        logit = self.bias + sum(self.contributions(raw).values())
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def live_score(self, raw: Mapping[str, float]) -> float:
        """The stage's live score, 0-1: the fused probability, or the smaller of it and the
        capping signal's own probability (a min rule: both must say live)."""
        fused = self.fused_score(raw)
        return min(fused, raw[self.capped_by]) if self.capped_by else fused

    def as_json(self) -> dict[str, object]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(self.bias, 6),
            "framing": self.framing,
            "live_reference": [round(float(v), 6) for v in self.live_reference],
            "attack_reference": [round(float(v), 6) for v in self.attack_reference],
            "capped_by": self.capped_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Fusion:
        def array(key: str) -> npt.NDArray[np.float64]:
            return np.asarray(data[key], dtype=np.float64)

        return cls(
            tuple(str(n) for n in data["features"]),  # type: ignore[attr-defined]
            array("mean"),
            array("scale"),
            array("weights"),
            float(data["bias"]),  # type: ignore[arg-type]
            str(data["framing"]),
            array("live_reference"),
            array("attack_reference"),
            str(data.get("capped_by", "")),
        )


def load_fusion(path: Path = FUSION_FILE, expected: str = FUSION_SHA256) -> Fusion:
    """The shipped fusion, only if its SHA-256 is the pinned one."""
    if not path.is_file():
        raise ModelUnavailableError(
            f"Presentation-attack fusion {path} is missing (expected SHA-256 {expected})."
        )
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != expected:
        raise ModelUnavailableError(
            f"{path} has SHA-256 {digest}, expected {expected}: the presentation-attack "
            "fusion is corrupt or not the shipped file."
        )
    return Fusion.from_json(json.loads(content))
