"""Validation of the templates a caller stored: one model's, the right length, finite and
non-zero; stacked into the (N, D) matrix the distances run over."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facesvc.engine.matching import scores
from facesvc.engine.matching.gallery import Checked
from facesvc.engine.pipeline.recognizers import FaceRecognizer
from facesvc.engine.types import FloatArray, StoredEmbedding
from facesvc.errors import EmbeddingInvalidError, EmbeddingModelMismatchError


def stacked(stored: Sequence[StoredEmbedding], recognizer: FaceRecognizer, what: str) -> Checked:
    """Validate stored embeddings and stack them into an (N, D) matrix."""
    for index, embedding in enumerate(stored):
        if embedding.model == recognizer.name and embedding.values.shape != (recognizer.dimension,):
            raise EmbeddingInvalidError(
                f"{what}[{index}] has {embedding.values.size} values; {recognizer.name} "
                f"embeddings have {recognizer.dimension}.",
                index=index,
                length=embedding.values.size,
                expected_length=recognizer.dimension,
            )
    if stored:
        shapes = {e.values.shape for e in stored}
        matrix = (
            np.stack([e.values for e in stored]).astype(np.float32, copy=False)
            if len(shapes) == 1
            else np.zeros((len(stored), 0), dtype=np.float32)
        )
    else:
        matrix = np.zeros((0, recognizer.dimension), dtype=np.float32)
    return checked_matrix(matrix, [e.model for e in stored], recognizer, what)


def checked_matrix(
    matrix: FloatArray, models: Sequence[str] | str, recognizer: FaceRecognizer, what: str
) -> Checked:
    """Check a gallery matrix: non-empty, this model's, right width, finite, non-zero."""
    rows = matrix.shape[0]
    if rows == 0:
        raise EmbeddingInvalidError(f"{what} is empty; send at least one embedding.", count=0)
    names = {models} if isinstance(models, str) else set(models)
    if names != {recognizer.name}:
        foreign = next(iter(names - {recognizer.name}))
        index = 0 if isinstance(models, str) else list(models).index(foreign)
        raise EmbeddingModelMismatchError(
            f"{what}[{index}] was made by model {foreign or '(none)'!r}, but this "
            f"service runs {recognizer.name!r}; re-enroll with this model.",
            index=index,
            embedding_model=foreign or "(none)",
            serving_model=recognizer.name,
        )
    if matrix.shape[1] != recognizer.dimension:
        raise EmbeddingInvalidError(
            f"{what} embeddings have {matrix.shape[1]} values; {recognizer.name} "
            f"embeddings have {recognizer.dimension}.",
            length=matrix.shape[1],
            expected_length=recognizer.dimension,
        )
    # One pass over the gallery: the row norms (which the distances reuse) are finite
    # exactly when every value is (and no value is past ~1e19), zero for an all-zero row.
    norms = scores.row_norms(matrix)
    if not np.isfinite(norms).all():  # which row, and why, only when one is bad
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise EmbeddingInvalidError(f"{what}[{row}] holds NaN or infinite values.", index=row)
        row = int(np.argmin(np.isfinite(norms)))
        raise EmbeddingInvalidError(f"{what}[{row}] holds values too large for an embedding.", index=row)
    if recognizer.metric == "cosine" and not norms.all():
        row = int(np.argmin(norms != 0))
        raise EmbeddingInvalidError(f"{what}[{row}] is all zeros.", index=row)
    return Checked(matrix, norms)
