"""Enrolment from several photos (or frames) of one person: the same-person check and the
choice of the templates to keep.

Several templates per person lower Identify's false-negative rate (issue 25: 5.0% -> 1.9%
at ~1,850 identities on LFW with two instead of one), provided they are of the same person
and differ from each other: the best photo first, then each time the photo farthest in
embedding space from those already chosen (a photo that adds nothing new is left out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from facesvc.config import Settings
from facesvc.engine.matching import scores
from facesvc.engine.types import AnalysedFace, EngineInfo, EnrolledTemplate, Enrollment
from facesvc.errors import DifferentPeopleError, EmbeddingInvalidError, FaceServiceError, TooManyImagesError

#: The templates an Enroll returns when the request does not say (max_templates 0).
DEFAULT_TEMPLATES = 3
#: A further template closer than this share of the match threshold to one already chosen
#: is a near-copy (the same photo twice, two frames a few ms apart): it is left out.
DUPLICATE_SHARE = 0.05


def template_quality(face: AnalysedFace) -> float:
    """The figure templates are ranked by, higher is better: the unified score, which
    predicts recognition failure (where the model has no calibration, the original score).
    On lfw-devtrain, keeping the best of a person's first three photos by the held-out
    unified score leaves 9.6% of their other photos beyond 0.45 from it, against 13.1% by
    the original score or by file order (`make eval`'s template table)."""
    quality = face.quality
    return float(quality.unified) if quality.components else float(quality.score)


def templates_wanted(requested: int, cap: int) -> int:
    """How many templates to return: the request's max_templates (0: the default), at
    most `cap` (FACESVC_ENROLL_MAX_TEMPLATES)."""
    if requested < 0:
        raise EmbeddingInvalidError("max_templates must not be negative.", max_templates=requested)
    return min(requested or DEFAULT_TEMPLATES, cap)


def check_count(images: int, cap: int) -> None:
    """TooManyImagesError for more photos than FACESVC_ENROLL_MAX_IMAGES."""
    if images > cap:
        raise TooManyImagesError(
            f"An Enroll takes at most {cap} photos; this one has {images}.", images=images, max_images=cap
        )


def indexed(analyse: Callable[..., AnalysedFace], named: bool) -> Callable[..., AnalysedFace]:
    """`analyse` taking the photo's index first; when `named` (several photos), an error it
    raises names the photo in its metadata (image_index)."""

    def run(index: int, *args: Any) -> AnalysedFace:
        try:
            return analyse(*args)
        except FaceServiceError as error:
            if named:
                error.metadata = {**error.metadata, "image_index": str(index)}
            raise

    return run


def check_same_person(faces: Sequence[AnalysedFace], metric: str, threshold: float) -> None:
    """Every photo must be linked to the first (the request's `image`) through photos that
    match at Verify's `threshold`: one genuine pair failing is not a refusal when the photo
    matches another one. DifferentPeopleError names the first photo that is not."""
    if len(faces) < 2:
        return
    lives = np.stack([f.embedding for f in faces])
    distances = scores.distances_of(lives, lives, metric)
    linked = np.zeros(len(faces), dtype=bool)
    linked[0] = True
    while True:
        reached = (distances[linked] <= threshold).any(axis=0) & ~linked
        if not reached.any():
            break
        linked |= reached
    if not linked.all():
        index = int(np.argmin(linked))
        raise DifferentPeopleError(
            f"Photo {index} does not show the person in photo 0 (distance "
            f"{float(distances[0, index]):.3f}, threshold {threshold:.3f}).",
            image_index=index,
            distance=float(distances[0, index]),
            threshold=threshold,
        )


def choose(faces: Sequence[AnalysedFace], count: int, metric: str, threshold: float) -> list[int]:
    """The indices of up to `count` faces: the best (template_quality) first, then each time
    the face farthest from those already chosen (the largest nearest distance; ties: the
    better quality), leaving out near-copies of a chosen one."""
    if not faces:
        return []
    ranks = np.array([template_quality(f) for f in faces])
    chosen = [int(np.argmax(ranks))]
    if count < 2 or len(faces) < 2:
        return chosen
    lives = np.stack([f.embedding for f in faces])
    distances = scores.distances_of(lives, lives, metric)
    while len(chosen) < count:
        nearest = distances[chosen].min(axis=0)
        nearest[chosen] = -np.inf
        best = max(range(len(faces)), key=lambda i: (nearest[i], ranks[i]))
        if nearest[best] < DUPLICATE_SHARE * threshold:
            break
        chosen.append(best)
    return chosen


def enrol(faces: Sequence[AnalysedFace], model: str, metric: str, threshold: float, count: int) -> Enrollment:
    """The Enrollment of analysed photos of one person (same-person check, then choice);
    its face is the first template's, so a one-photo Enroll answers as it always did."""
    check_same_person(faces, metric, threshold)
    templates = tuple(EnrolledTemplate(faces[i], i) for i in choose(faces, count, metric, threshold))
    return Enrollment(face=templates[0].face, model=model, templates=templates)


class _Serving(Protocol):
    """What from_frames needs of the engine (its settings and model)."""

    settings: Settings

    def info(self) -> EngineInfo: ...


def from_frames(
    best: AnalysedFace, frames: Sequence[AnalysedFace], requested: int, engine: _Serving
) -> tuple[EnrolledTemplate, ...]:
    """A passed liveness session's templates: up to `requested` (0: none; at most
    FACESVC_ENROLL_MAX_TEMPLATES) of its best frame and the embedded frames consistent with
    the one person checked, chosen as Enroll chooses photos (image_index 0: frames have no
    photo index)."""
    if requested <= 0:
        return ()
    info = engine.info()
    faces = [best, *(f for f in frames if f is not best and f.embedding.size)]
    count = min(requested, engine.settings.enroll_max_templates)
    return tuple(
        EnrolledTemplate(faces[i], 0) for i in choose(faces, count, info.distance_metric, info.threshold)
    )
