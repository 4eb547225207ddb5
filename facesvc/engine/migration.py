"""Model upgrades without re-enrolment (issue 28; docs/MODELS.md, "Migrating to a new model").

A server may hold, beside its current model (FACESVC_MODEL), a next model
(FACESVC_MODEL_NEXT) and a previous one (FACESVC_MODEL_PREVIOUS); both must be models this
service ships. With either set (`Migration.active`), Verify, Identify and the liveness
session's comparisons go through this module:

- **Which models a gallery needs.** Stored templates and galleries may mix the served
  models. Each model's templates are compared with the probe's embedding by that model;
  the probe is embedded by every model the gallery holds (the current model's embedding
  always, another only when the gallery holds its templates or an upgrade is returned).
  A template of any other model is refused (EMBEDDING_MODEL_MISMATCH, naming the models served).
- **Deciding across models.** Each model keeps its own line: the caller's `threshold`
  applies to the current model, `far` to each model's own point, and otherwise each
  model's default. Identify's open-set rule counts identities per model and adds them
  (N = sum over the gallery's models of its distinct identities there), and each model
  takes its line for that N: an identity holding templates of both models is two chances,
  and with each model's per-identity false-positive share at FPIR / N the union over all
  N chances stays within the FPIR target. Identities are ranked by distance over their
  model's line (the first model to reach its line ranks first).
- **The upgrade.** When the current model (or, after the switch-over, the previous one)
  confirms a match inside a stricter, confident line, on a frame of good quality judged
  live, the answer carries the next model's (after the switch-over: the current model's)
  template of the same face. The line is the model's FAR 0.01% point (STRICT_FAR,
  calibrated on lfw-devtrain, ten times below the default FAR 0.1%), and for Identify also
  the open-set line at FPIR 0.1% (UPGRADE_FPIR, ten times below the default 1%) for the
  gallery's N, and no second identity may match. Never for a non-match, an undecided
  answer or a refused frame (those raise before this module is reached).

Without a next or previous model none of this runs: Verify and Identify cost what they did.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from facesvc.config import Settings
from facesvc.engine.matching import open_set, scores, validation
from facesvc.engine.matching.gallery import Checked, Gallery
from facesvc.engine.pipeline.presentation_attack import CHECK_NAME
from facesvc.engine.pipeline.recognizers import FaceRecognizer, FusedRecognizer, create_recognizer
from facesvc.engine.runtime import licences
from facesvc.engine.types import (
    AnalysedFace,
    FloatArray,
    Identification,
    IdentityMatch,
    ModelRoles,
    StoredEmbedding,
    TemplateUpgrade,
    Verification,
)
from facesvc.errors import EmbeddingModelMismatchError, ModelUnavailableError


class FaceEngine(Protocol):
    """What this module uses of facesvc.engine.engine.FaceEngine (which delegates here)."""

    def _threshold(
        self, requested: float | None, far: float | None = None, recognizer: FaceRecognizer | None = None
    ) -> float: ...

    def _identify_threshold(
        self,
        threshold: float | None,
        far: float | None,
        fpir: float | None,
        identities: open_set.Counted,
        recognizer: FaceRecognizer,
    ) -> tuple[float, float]: ...

    @staticmethod
    def _verification(
        face: AnalysedFace, templates: Checked, limit: float, recognizer: FaceRecognizer
    ) -> Verification: ...


log = logging.getLogger("facesvc.engine")

#: The false-accept rate of the confident line (each model's published FAR 0.01% point).
STRICT_FAR = 0.0001
#: The FPIR of Identify's confident line (a published point of the open-set table).
UPGRADE_FPIR = 0.001


@dataclass(frozen=True, slots=True)
class _Group:
    """The rows of one model in a gallery, with their positions in the whole gallery."""

    model: str
    ids: Sequence[str]
    matrix: FloatArray
    rows: np.ndarray


class Probe:
    """One analysed face and its embeddings by every model asked for so far (each made once)."""

    def __init__(self, face: AnalysedFace, current: str, served: dict[str, FaceRecognizer]) -> None:
        self.face = face
        self._served = served
        self._made: dict[str, FloatArray] = {current: face.embedding}

    def embedding(self, model: str) -> FloatArray:
        if model not in self._made:
            face, recognizer = self.face, self._served[model]
            if face.pixels is None or face.source is None:
                raise RuntimeError("the face was analysed without its pixels")
            sface = self._made.get("SFace")
            if isinstance(recognizer, FusedRecognizer) and sface is not None:
                self._made[model] = recognizer.embed_beside(face.pixels, face.source, sface)
            else:
                self._made[model] = recognizer.embed(face.pixels, face.source)
        return self._made[model]

    def as_model(self, model: str) -> AnalysedFace:
        return replace(self.face, embedding=self.embedding(model))


class Migration:
    """The models loaded beside the current one, and the rules that use them."""

    def __init__(
        self,
        settings: Settings,
        current: FaceRecognizer,
        next_model: FaceRecognizer | None = None,
        previous: FaceRecognizer | None = None,
    ) -> None:
        self.settings = settings
        self.current = current
        self.next = next_model
        self.previous = previous
        self.served = {r.name: r for r in (current, next_model, previous) if r is not None}

    @property
    def active(self) -> bool:
        """Whether a next or previous model is loaded (then comparisons go through here)."""
        return len(self.served) > 1

    @staticmethod
    def load(settings: Settings, current: FaceRecognizer, weights_dir: Path | None, slots: int) -> Migration:
        """Load FACESVC_MODEL_NEXT and FACESVC_MODEL_PREVIOUS; ModelUnavailableError (the
        server refuses to start) for a model this service does not ship."""
        loaded: dict[str, FaceRecognizer | None] = {}
        for option, name in (
            ("FACESVC_MODEL_NEXT", settings.model_next),
            ("FACESVC_MODEL_PREVIOUS", settings.model_previous),
        ):
            if not name:
                loaded[option] = None
                continue
            if name not in licences.VETTED_MODELS:
                raise ModelUnavailableError(
                    f"{option}={name} is not a model this service ships "
                    f"({', '.join(sorted(licences.VETTED_MODELS))}); a migration runs between "
                    "shipped, licence-checked models only (docs/MODELS.md)."
                )
            if name == current.name or name in {r.name for r in loaded.values() if r}:
                raise ModelUnavailableError(
                    f"{option}={name} is already loaded as another role; current, next and "
                    "previous models must differ."
                )
            loaded[option] = create_recognizer(name, weights_dir, slots)
        migration = Migration(
            settings, current, loaded["FACESVC_MODEL_NEXT"], loaded["FACESVC_MODEL_PREVIOUS"]
        )
        if migration.active:
            log.info("migration models loaded", extra={"models": ",".join(migration.served)})
        return migration

    def roles(self, verify_limit: float) -> ModelRoles | None:
        """What Health publishes; None without a migration."""
        if not self.active:
            return None
        decider = self.current
        return ModelRoles(
            current=self.current.name,
            next=self.next.name if self.next else "",
            previous=self.previous.name if self.previous else "",
            upgrade_threshold=self.confident_line(decider, verify_limit),
            upgrade_far=STRICT_FAR,
            upgrade_fpir=UPGRADE_FPIR,
            upgrade_min_quality=self.settings.model_upgrade_min_quality,
            upgrade_requires_live=self.settings.model_upgrade_requires_live,
        )

    def embed_pixels(self) -> bool:
        """Whether analysed faces keep their pixels (a further model may embed them)."""
        return self.active

    # ---- which models a gallery needs ----------------------------------------------

    def _recognizer(self, model: str, index: int, what: str) -> FaceRecognizer:
        recognizer = self.served.get(model)
        if recognizer is None:
            raise EmbeddingModelMismatchError(
                f"{what}[{index}] was made by model {model or '(none)'!r}; this service serves "
                f"{', '.join(repr(m) for m in self.served)} (current {self.current.name!r}); "
                "re-enroll with one of them.",
                index=index,
                embedding_model=model or "(none)",
                serving_model=self.current.name,
                served_models=",".join(self.served),
            )
        return recognizer

    def _groups(self, gallery: Gallery, what: str) -> list[_Group]:
        """A gallery's rows by model (each model's rows in one matrix)."""
        if gallery.parts:
            groups: list[_Group] = []
            offset = 0
            for part in gallery.parts:
                groups += [replace(g, rows=g.rows + offset) for g in self._groups(part, what)]
                offset += len(part.ids)
            return groups
        count = len(gallery.ids)
        if isinstance(gallery.models, str) or len(set(gallery.models)) <= 1:
            model = gallery.models if isinstance(gallery.models, str) else next(iter(gallery.models), "")
            self._recognizer(model, 0, what)
            return [_Group(model, gallery.ids, gallery.matrix, np.arange(count))]
        models = np.asarray(gallery.models, dtype=object)
        ids = np.asarray(gallery.ids, dtype=object)
        result = []
        for model in dict.fromkeys(gallery.models):
            rows = np.flatnonzero(models == model)
            self._recognizer(model, int(rows[0]), what)
            result.append(_Group(model, ids[rows].tolist(), gallery.matrix[rows], rows))
        return result

    # ---- the lines ---------------------------------------------------------------

    def _limit(
        self, engine: FaceEngine, recognizer: FaceRecognizer, threshold: float | None, far: float | None
    ) -> float:
        """A model's match line: the caller's threshold is the current model's; far each model's point."""
        if recognizer is self.current or far is not None:
            return engine._threshold(threshold if recognizer is self.current else None, far, recognizer)
        return recognizer.default_threshold

    def _identify_limit(
        self,
        engine: FaceEngine,
        recognizer: FaceRecognizer,
        threshold: float | None,
        far: float | None,
        fpir: float | None,
        identities: open_set.Counted,
    ) -> tuple[float, float]:
        """Identify's line for one model of the gallery, at the gallery's summed N."""
        if recognizer is self.current:
            return engine._identify_threshold(threshold, far, fpir, identities, recognizer)
        if far is not None:
            return engine._threshold(None, far, recognizer), 0.0
        table = open_set.table_for(recognizer.name)
        if threshold is not None or table is None or not self.settings.identify_fpir:
            return recognizer.default_threshold, 0.0
        rule = open_set.OpenSetRule(table, self.settings.identify_fpir, recognizer.default_threshold)
        return rule.threshold(identities.weight, fpir)

    @staticmethod
    def _counted(groups: Sequence[_Group]) -> open_set.Counted:
        """A mixed gallery's N: each model's identities, weighted by their templates under
        that model's table (facesvc.engine.matching.open_set.counted), added up."""
        parts = [open_set.counted(g.ids, open_set.table_for(str(g.model))) for g in groups]
        return open_set.Counted(sum(p.identities for p in parts), sum(p.weight for p in parts))

    @staticmethod
    def confident_line(recognizer: FaceRecognizer, limit: float, identities: int = 0) -> float:
        """The stricter line an upgrade must be inside: the FAR 0.01% point, and for
        Identify (`identities` > 0) the open-set line at UPGRADE_FPIR for that N."""
        line = limit
        point = next((p for p in recognizer.operating_points if math.isclose(p.far, STRICT_FAR)), None)
        line = min(line, point.threshold if point else 0.0)  # an uncalibrated model upgrades nobody
        table = open_set.table_for(recognizer.name)
        if identities and table is not None and table.point(UPGRADE_FPIR) is not None:
            line = min(line, table.threshold_for(identities, UPGRADE_FPIR))
        return line

    # ---- the upgrade -------------------------------------------------------------

    def _target(self, decided_by: str) -> FaceRecognizer | None:
        """The model a template decided by `decided_by` is upgraded to, or None."""
        if decided_by == self.current.name and self.next is not None:
            return self.next
        if self.previous is not None and decided_by == self.previous.name:
            return self.current
        return None

    def _fit(self, face: AnalysedFace, judged_live: bool) -> bool:
        """A frame good enough to carry a template: of good quality, judged live."""
        if face.quality.score < self.settings.model_upgrade_min_quality:
            return False
        if not self.settings.model_upgrade_requires_live or judged_live:
            return True
        return any(c.name == CHECK_NAME and c.passed for c in face.liveness)

    def _upgrade(
        self, probe: Probe, decided_by: str, distance: float, line: float, identity: str, judged_live: bool
    ) -> TemplateUpgrade | None:
        target = self._target(decided_by)
        if target is None or distance > line or not self._fit(probe.face, judged_live):
            return None
        return TemplateUpgrade(
            probe.embedding(target.name), target.name, identity, decided_by, distance, line
        )

    # ---- Verify and Identify over several models ----------------------------------

    def check(self, stored: Sequence[StoredEmbedding], gallery: Gallery | None, engine: FaceEngine) -> None:
        """Validate templates before a face is analysed (the liveness session's start)."""
        if stored:
            self._stored_groups(stored, engine, "stored_embeddings")
        if gallery is not None:
            for group in self._groups(gallery, "candidates"):
                recognizer = self.served[group.model]
                validation.checked_matrix(group.matrix, group.model, recognizer, "candidates")

    def _stored_groups(
        self, stored: Sequence[StoredEmbedding], engine: FaceEngine, what: str
    ) -> list[tuple[FaceRecognizer, list[int], Checked]]:
        if not stored:
            validation.stacked(stored, self.current, what)  # "empty"
        groups = []
        for model in dict.fromkeys(e.model for e in stored):
            rows = [i for i, e in enumerate(stored) if e.model == model]
            recognizer = self._recognizer(model, rows[0], what)
            groups.append((recognizer, rows, validation.stacked([stored[i] for i in rows], recognizer, what)))
        return groups

    def verify(
        self,
        engine: FaceEngine,
        face: AnalysedFace,
        stored: Sequence[StoredEmbedding],
        threshold: float | None,
        far: float | None = None,
        judged_live: bool = False,
    ) -> Verification:
        """Verify over templates of several models: the one closest to its model's line decides."""
        probe = Probe(face, self.current.name, self.served)
        best: tuple[float, Verification, int, float] | None = None
        for recognizer, rows, checked in self._stored_groups(stored, engine, "stored_embeddings"):
            limit = self._limit(engine, recognizer, threshold, far)
            result = engine._verification(probe.as_model(recognizer.name), checked, limit, recognizer)
            ratio = result.distance / limit
            if best is None or ratio < best[0]:
                best = (ratio, result, rows[result.best_template_index], limit)
        assert best is not None
        _, result, row, limit = best
        upgrade = None
        if result.match:
            line = self.confident_line(self.served[result.model], limit)
            upgrade = self._upgrade(probe, result.model, result.distance, line, "", judged_live)
        return replace(result, face=face, best_template_index=row, upgrade=upgrade)

    def identify(
        self,
        engine: FaceEngine,
        face: AnalysedFace,
        gallery: Gallery,
        top_k: int,
        threshold: float | None,
        far: float | None,
        fpir: float | None,
        frames: Sequence[FloatArray] = (),
        judged_live: bool = False,
    ) -> tuple[Identification, float]:
        """Identify over a gallery of several models; also the line of the model that ranked first."""
        probe = Probe(face, self.current.name, self.served)
        groups = self._groups(gallery, "candidates")
        identities = self._counted(groups)
        wanted = max(top_k, 2)  # the runner-up: an upgrade needs no second match
        ranked: list[tuple[float, IdentityMatch, float]] = []
        target = 0.0
        reported = None
        for group in groups:
            recognizer = self.served[group.model]
            checked = validation.checked_matrix(group.matrix, group.model, recognizer, "candidates")
            limit, target_m = self._identify_limit(engine, recognizer, threshold, far, fpir, identities)
            lives = np.stack([probe.embedding(group.model), *(frames if recognizer is self.current else ())])
            every = scores.distances_of(lives, checked.matrix, recognizer.metric, checked.norms)
            dists = open_set.fuse_frames(every) if len(lives) > 1 else every[0]
            for match in open_set.rank(group.ids, dists, wanted, limit):
                ranked.append((match.distance / limit, replace(match, model=group.model), limit))
            if recognizer is self.current or reported is None:
                reported, target = limit, target_m
        best: dict[str, tuple[float, IdentityMatch, float]] = {}
        for entry in sorted(ranked, key=lambda e: e[0]):
            best.setdefault(entry[1].id, entry)
        order = list(best.values())
        _, top, top_limit = order[0]
        upgrade = None
        if top.match and not (len(order) > 1 and order[1][1].match):
            line = self.confident_line(self.served[top.model], top_limit, identities.weight)
            upgrade = self._upgrade(probe, top.model, top.distance, line, top.id, judged_live)
        result = Identification(
            face=face,
            model=self.current.name,
            threshold=float(reported if reported is not None else top_limit),
            matches=tuple(m for _, m, _ in order[: max(top_k, 1)]),
            identities=identities.identities,
            fpir=target,
            frames=1 + len(frames),
            weight=identities.weight,
            upgrade=upgrade,
        )
        return result, top_limit
