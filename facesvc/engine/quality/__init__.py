"""Quality that predicts recognition failure: component measures and their fused score.

`QualityAssessor` is what the engine holds: `gate` applies the original score's threshold
(FACESVC_QUALITY_THRESHOLD, unchanged), `assess` adds the unified score and the components
(facesvc.engine.quality.measures, .fusion) and refuses a face below a floor, naming its
weakest component. docs/QUALITY.md has the measures, the fit and its EDC tables.
"""

from __future__ import annotations

import math
from dataclasses import replace

from facesvc.engine.quality.eyes import EyeOpenness, MeshEyeOpenness
from facesvc.engine.quality.fusion import QualityFusion, load_tables
from facesvc.engine.quality.measures import measure
from facesvc.engine.types import Detection, FloatArray, Image, Quality
from facesvc.errors import LowQualityError, RequestInvalidError

__all__ = ["MeshEyeOpenness", "QualityAssessor", "QualityFusion", "floor_of"]


def floor_of(requested: float | None, default: float) -> float:
    """The unified-quality floor of one request: its own (0-100) or the setting's."""
    if requested is None:
        return default
    if not math.isfinite(requested) or not 0.0 <= requested <= 100.0:
        raise RequestInvalidError("min_quality must be between 0 and 100.", min_quality=requested)
    return float(requested)


class QualityAssessor:
    """The quality stage's decisions for one recognizer (its fitted fusion, if any)."""

    def __init__(self, model: str, threshold: float) -> None:
        self.threshold = threshold
        #: What reads the eyelids, set once the engine has loaded its Face Mesh (None:
        #: eyes_open is not measured nor reported).
        self.eyes: EyeOpenness | None = None
        tables = load_tables()
        #: Models without a calibration use the default model's fit (SFace's): the image and
        #: geometry terms carry over, the embedding's norm is the model's own, so it is left out.
        self.fusion = tables.get(model) or tables.get("SFace")
        self._has_norm = model in tables

    def gate(self, quality: Quality) -> None:
        """The original score's threshold (what Enroll, Verify and Identify always applied)."""
        if quality.score < self.threshold:
            raise LowQualityError(
                f"Face quality {quality.score:.1f} is below {self.threshold:g}; "
                "use a sharper, better lit photo.",
                quality_score=quality.score,
                quality_threshold=self.threshold,
                sharpness=quality.sharpness,
                brightness=quality.brightness,
                face_size=quality.face_size,
            )

    def assess(
        self,
        quality: Quality,
        image: Image,
        detection: Detection,
        face_size_px: float,
        embedding: FloatArray | None,
        floor: float = 0.0,
    ) -> Quality:
        """`quality` with the unified score and components of the face `detection` in `image`;
        LowQualityError when the unified score is below `floor`."""
        if self.fusion is None:
            return quality
        embedded = embedding is not None and embedding.size > 0
        with_norm = self._has_norm and embedded
        # A liveness session's frames (not embedded) skip the eyelids too: the session reads
        # them with its own mesh, and the 3 ms would be paid on every frame.
        eyes = self.eyes if embedded else None
        measures = measure(image, detection, face_size_px, embedding if with_norm else None, eyes)
        unified, components = self.fusion.assess(measures, has_embedding=with_norm)
        assessed = replace(quality, unified=unified, components=components)
        fusion = self.fusion
        # What to name: a component with a reason first, else the fused one that costs most.
        named = [c for c in components if c.reason != "OK"] or [c for c in components if fusion.fused(c.name)]
        weakest = min(named, key=lambda c: c.score, default=None)
        if unified < floor and weakest is not None:
            raise LowQualityError(
                f"Face quality {unified:.1f} is below {floor:g}, mostly for its {weakest.name} "
                f"({weakest.value:g}: {weakest.reason}); take another photo.",
                unified_quality=unified,
                min_quality=floor,
                component=weakest.name,
                component_value=weakest.value,
                component_reason=weakest.reason,
            )
        return assessed
