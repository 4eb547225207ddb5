"""The template policy: what Enroll hands out, what Verify, Identify and Reseal accept, and
the key ring file they seal and open with (reloaded on change or SIGHUP)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path

import numpy as np

from facesvc.engine.matching.gallery import Candidate, Gallery
from facesvc.engine.templates.sealing import (
    Exported,
    KeyRing,
    Opened,
    Refused,
    SealedTemplate,
    Template,
    check_tag,
)
from facesvc.engine.types import FloatArray, StoredEmbedding
from facesvc.errors import EmbeddingInvalidError, SealingUnavailableError, TemplateInvalidError

log = logging.getLogger("facesvc.security")


class TemplateMode(Enum):
    """Which templates the service hands out and accepts (FACESVC_TEMPLATES)."""

    PLAIN = "plain"  # Enroll returns values; sealed ones open when their key is held
    SEALED = "sealed"  # Enroll seals; plain embeddings are refused
    BOTH = "both"  # Enroll seals; either kind is accepted (a migration)


class KeyRingFile:
    """The key ring of FACESVC_TEMPLATE_KEYS_FILE, reloaded when the file changes (checked on
    every use: one stat) or on `reload()` (SIGHUP). A file that no longer loads keeps the
    ring that did, and says why in the security log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._ring = KeyRing.load(path)

    def _stat(self) -> tuple[int, int, int, int]:
        info = os.stat(self.path)
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def ring(self) -> KeyRing:
        try:
            changed = self._stat() != self._signature
        except OSError:
            changed = False  # gone for a moment (a secret being swapped): keep the ring
        if changed:
            self.reload()
        return self._ring

    def reload(self) -> bool:
        """Read the file again; True when the new ring is in use."""
        with self._lock:
            signature = None
            try:
                signature = self._stat()
                ring = KeyRing.load(self.path)
            except (OSError, ValueError) as error:
                if signature is not None:
                    self._signature = signature  # say it once per change
                log.error(
                    "template keys not reloaded; the previous ring stays in use",
                    extra={"event": "template_keys_reload_failed", "error": str(error)},
                )
                return False
            self._signature, self._ring = signature, ring
        log.info(
            "template keys reloaded",
            extra={
                "event": "template_keys_reloaded",
                "current_key": ring.current_id,
                "keys": len(ring.key_ids),
            },
        )
        return True


class Templates:
    """The template policy of one service: what Enroll hands out, what Verify, Identify and
    Reseal accept, and the key ring that seals and opens."""

    def __init__(self, mode: TemplateMode, keys: KeyRingFile | None) -> None:
        if mode is not TemplateMode.PLAIN and keys is None:
            raise ValueError(f"template mode {mode.value} needs a key ring")
        self.mode = mode
        self._keys = keys

    @classmethod
    def configured(cls, mode: str, keys_file: Path | None) -> Templates:
        return cls(TemplateMode(mode), KeyRingFile(keys_file) if keys_file is not None else None)

    @property
    def current_key_id(self) -> str:
        return self._keys.ring().current_id if self._keys else ""

    def reload(self) -> bool:
        """Re-read the key file (SIGHUP); False when there is none or it did not load."""
        return self._keys.reload() if self._keys else False

    def _ring(self, what: str, index: int) -> KeyRing:
        if self._keys is None:
            raise TemplateInvalidError(
                f"{what}[{index}] is a sealed template, and this service holds no template key.",
                index=index,
                problem="unknown_key",
            )
        return self._keys.ring()

    # ---- out --------------------------------------------------------------------------

    def export(self, values: FloatArray, model: str) -> Exported:
        """Enroll's template: sealed under the current key unless the mode is plain."""
        if self.mode is TemplateMode.PLAIN or self._keys is None:
            return Exported(model, values=values)
        ring = self._keys.ring()
        return Exported(model, sealed=ring.seal(values, model), key_id=ring.current_id)

    def reseal(
        self,
        templates: Sequence[Template],
        check: Callable[[Sequence[StoredEmbedding], str], object],
        ids: Sequence[str] = (),
    ) -> tuple[list[Exported], bytes]:
        """Every template sealed under the current key; `check` validates the opened values
        as Verify would (length, NaN, zero, model). A resealed template keeps its creation
        time. With `ids` (one per template) they come back as one sealed gallery instead
        (and no templates); else the gallery is b""."""
        if self._keys is None:
            raise SealingUnavailableError(
                "This service has no template key (FACESVC_TEMPLATE_KEYS_FILE); it cannot seal.",
            )
        if not templates:
            raise EmbeddingInvalidError("templates is empty; send at least one.", count=0)
        ring = self._keys.ring()
        opened: list[StoredEmbedding] = []
        created: list[int | None] = []
        for index, template in enumerate(templates):
            if isinstance(template, SealedTemplate):
                inside = self._open(ring, template, "templates", index)
                opened.append(StoredEmbedding(inside.values, inside.model))
                created.append(inside.created)
            else:
                opened.append(template)
                created.append(None)
        check(opened, "templates")
        if ids and len(ids) != len(opened):
            raise EmbeddingInvalidError(
                f"ids has {len(ids)} entries for {len(opened)} templates; one id per template.",
                ids=len(ids),
                templates=len(opened),
            )
        if ids:
            matrix = np.stack([t.values for t in opened]).astype(np.float32, copy=False)
            return [], ring.seal_gallery(list(ids), matrix, opened[0].model)
        resealed = [
            Exported(t.model, sealed=ring.seal(t.values, t.model, when), key_id=ring.current_id)
            for t, when in zip(opened, created, strict=True)
        ]
        return resealed, b""

    # ---- in ---------------------------------------------------------------------------

    def _refuse_plain(self, what: str, index: int) -> None:
        if self.mode is TemplateMode.SEALED:
            raise TemplateInvalidError(
                f"{what}[{index}] is a plain embedding; this service accepts sealed templates only.",
                index=index,
                problem="plain_refused",
            )

    def allow_plain(self, what: str, count: int) -> None:
        """Refuse `count` (> 0) plain rows of `what` when only sealed templates are accepted."""
        if count:
            self._refuse_plain(what, 0)

    @staticmethod
    def _open(ring: KeyRing, template: SealedTemplate, what: str, index: int) -> Opened:
        if template.plain_values:
            raise TemplateInvalidError(
                f"{what}[{index}] carries both values and a sealed template; send one of them.",
                index=index,
                problem="values_and_sealed",
            )
        try:
            opened = ring.open(template.blob)
        except Refused as refused:
            raise refused.at(what, index) from None
        if template.model:
            check_tag(template.model, [opened.model], f"{what}[{index}]")
        return opened

    def stored(self, templates: Sequence[Template], what: str) -> list[StoredEmbedding]:
        """Verify's templates, sealed ones opened (in memory only)."""
        result: list[StoredEmbedding] = []
        for index, template in enumerate(templates):
            if isinstance(template, SealedTemplate):
                opened = self._open(self._ring(what, index), template, what, index)
                result.append(StoredEmbedding(opened.values, opened.model))
            else:
                self._refuse_plain(what, index)
                result.append(template)
        return result

    def gallery(self, entries: Sequence[tuple[str, Template]], what: str) -> Gallery:
        """Candidate messages, plain and sealed mixed: one Gallery, in their order."""
        stored = self.stored([template for _, template in entries], what)
        return Gallery.of([Candidate(identity, s) for (identity, _), s in zip(entries, stored, strict=True)])

    def packed_galleries(self, blobs: Sequence[bytes], what: str) -> Gallery:
        """Sealed galleries (SealedGallery.packed), each opened with one AES-GCM call."""
        result = Gallery([], np.zeros((0, 0), dtype=np.float32), [])
        for index, blob in enumerate(blobs):
            try:
                ids, rows, model = self._ring(what, index).open_gallery(blob)
            except Refused as refused:
                raise refused.at(what, index) from None
            result += Gallery.rows(ids, rows, model)
        return result

    def sealed_rows(
        self, ids: Sequence[str], blobs: Sequence[bytes], what: str, model_tag: str = ""
    ) -> Gallery:
        """A gallery of sealed templates (SealedGallery, or Candidates all sealed alike)."""
        if len(ids) != len(blobs):
            raise EmbeddingInvalidError(
                f"{what} has {len(ids)} ids and {len(blobs)} templates; one id per template.",
                ids=len(ids),
                templates=len(blobs),
            )
        if not blobs:
            return Gallery([], np.zeros((0, 0), dtype=np.float32), [])
        matrix, models = self._ring(what, 0).open_rows(blobs, what, model_tag)
        gallery = Gallery.rows(ids, matrix, models[0])
        return gallery if len(set(models)) == 1 else Gallery(gallery.ids, matrix, models)
