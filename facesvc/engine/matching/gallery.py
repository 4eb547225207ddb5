"""A gallery for Identify: the candidates' templates as one (N, D) matrix with their ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesvc.engine.types import FloatArray, StoredEmbedding
from facesvc.errors import EmbeddingInvalidError

#: The number formats of a packed gallery's values (PackedGallery.encoding).
PACKED_ENCODINGS: dict[str, np.dtype[np.floating[Any]]] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery entry for Identify."""

    id: str
    embedding: StoredEmbedding


@dataclass(frozen=True, slots=True)
class Gallery:
    """A whole gallery as one matrix: row i is a template of identity ids[i]."""

    ids: Sequence[str]
    matrix: FloatArray  # (N, D) float32
    #: The model of each row, or one name for every row.
    models: Sequence[str] | str
    #: A gallery mixing models of different widths (a migration, facesvc.engine.migration):
    #: one gallery per width; `matrix` is then (N, 0).
    parts: tuple[Gallery, ...] = ()

    @staticmethod
    def of(candidates: Sequence[Candidate]) -> Gallery:
        """From Candidate messages, each with its own embedding and model."""
        for index, candidate in enumerate(candidates):
            if not candidate.id:
                raise EmbeddingInvalidError("Every candidate needs an id.", index=index)
        lengths = {c.embedding.values.shape for c in candidates}
        widths = {(c.embedding.model, c.embedding.values.shape) for c in candidates}
        if len(lengths) > 1 and len(widths) == len({c.embedding.model for c in candidates}):
            return Gallery.mixed(
                [Gallery.of([c for c in candidates if c.embedding.values.shape == n]) for n in lengths]
            )
        if len(lengths) > 1:
            first = candidates[0].embedding.values.size
            index = next(i for i, c in enumerate(candidates) if c.embedding.values.size != first)
            raise EmbeddingInvalidError(
                "Gallery embeddings differ in length.",
                index=index,
                length=candidates[index].embedding.values.size,
            )
        if candidates:
            matrix = np.stack([c.embedding.values for c in candidates]).astype(np.float32, copy=False)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        return Gallery([c.id for c in candidates], matrix, [c.embedding.model for c in candidates])

    @staticmethod
    def rows(ids: Sequence[str], matrix: FloatArray, model: str) -> Gallery:
        """From rows already in one (N, D) matrix, every row of one model."""
        _require_ids(ids, "Every candidate needs an id.")
        return Gallery(ids, matrix, model)

    @staticmethod
    def packed(
        ids: Sequence[str], values: bytes, model: str, dimension: int, encoding: str = "float32"
    ) -> Gallery:
        """From a packed block of little-endian rows, float32 or float16 (`encoding`)."""
        dtype = PACKED_ENCODINGS[encoding]
        if not ids and not values:
            return Gallery([], np.zeros((0, dimension), dtype=np.float32), model)
        width = dtype.itemsize
        if len(values) != len(ids) * dimension * width:
            raise EmbeddingInvalidError(
                f"packed_candidates.values holds {len(values)} bytes; {len(ids)} ids x {dimension} values "
                f"x {width} bytes ({encoding}) = {len(ids) * dimension * width} expected.",
                bytes=len(values),
                ids=len(ids),
                expected_length=dimension,
                encoding=encoding,
            )
        _require_ids(ids, "Every packed row needs an id.")
        matrix = np.frombuffer(values, dtype=dtype).reshape(len(ids), dimension)
        if dtype != np.float32:
            matrix = matrix.astype(np.float32)
        return Gallery(ids, matrix, model)

    @staticmethod
    def mixed(galleries: Sequence[Gallery]) -> Gallery:
        """Galleries of models whose widths differ, as one (each model's rows in one part)."""
        parts = tuple(p for g in galleries for p in (g.parts or (g,)) if len(p.ids))
        ids = [i for p in parts for i in p.ids]
        models = [m for p in parts for m in _expand(p.models, len(p.ids))]
        return Gallery(ids, np.zeros((len(ids), 0), dtype=np.float32), models, parts)

    def __add__(self, other: Gallery) -> Gallery:
        if not len(other.ids):
            return self
        if not len(self.ids):
            return other
        differ = self.parts or other.parts or self.matrix.shape[1] != other.matrix.shape[1]
        if differ and set(_expand(self.models, 1)).isdisjoint(_expand(other.models, 1)):
            return Gallery.mixed([self, other])
        if self.matrix.shape[1] != other.matrix.shape[1]:
            raise EmbeddingInvalidError(
                "candidates and packed_candidates differ in embedding length.",
                length=self.matrix.shape[1],
                expected_length=other.matrix.shape[1],
            )
        models = [*_expand(self.models, len(self.ids)), *_expand(other.models, len(other.ids))]
        return Gallery([*self.ids, *other.ids], np.vstack([self.matrix, other.matrix]), models)


@dataclass(frozen=True, slots=True)
class Checked:
    """A gallery matrix the engine validated, with its row norms (computed once by the
    validation and reused by the distances)."""

    matrix: FloatArray  # (N, D) float32
    norms: FloatArray  # (N,)


def _require_ids(ids: Sequence[str], message: str) -> None:
    if not all(ids):
        raise EmbeddingInvalidError(message, index=next(i for i, identity in enumerate(ids) if not identity))


def _expand(models: Sequence[str] | str, count: int) -> Sequence[str]:
    return [models] * count if isinstance(models, str) else models
