"""Sealed templates: embeddings under AES-256-GCM, so that a copy of the caller's table
holds no usable face data.

A sealed template is an opaque, versioned blob (integers big-endian):

    magic     2          0xFA 0xCE
    version   1          1
    key id    1 + k      its length, then the id (letters, digits, '.', '_', '-')
    model     1 + m      its length, then the model name (UTF-8), e.g. "SFace"
    dimension 2          how many float32 values it holds
    created   8          Unix seconds when the template was first sealed
    nonce     12         random, new for every seal
    sealed    4 * d + 16 the little-endian float32 values under AES-256-GCM, tag last

Everything before the nonce is the associated data, so the model tag, the dimension,
the key id and the creation time are authenticated with the values: changing any
byte of the blob makes it fail to open.

A sealed gallery (Reseal with ids; Identify's sealed_candidates.packed) is the same
with version byte 2, a 4-byte row count after the creation time, and as its plaintext
the rows (count x dimension float32) followed by the ids joined by NUL: one AES-GCM open
for a whole gallery instead of one per template. The key ring (FACESVC_TEMPLATE_KEYS_FILE) holds
`id:base64key` lines; the first key seals, every key opens. Nothing here logs or
returns an opened vector; refusals say why, never what the blob held.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import repeat
from operator import itemgetter
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facesvc.engine.engine import Candidate, Gallery
from facesvc.engine.types import FloatArray, StoredEmbedding
from facesvc.errors import EmbeddingInvalidError, SealingUnavailableError, TemplateInvalidError

log = logging.getLogger("facesvc.security")

MAGIC = b"\xfa\xce"
VERSION = 1
GALLERY_VERSION = 2
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIMENSION_AND_CREATED = struct.Struct(">HQ")


class TemplateMode(Enum):
    """Which templates the service hands out and accepts (FACESVC_TEMPLATES)."""

    PLAIN = "plain"  # Enroll returns values; sealed ones open when their key is held
    SEALED = "sealed"  # Enroll seals; plain embeddings are refused
    BOTH = "both"  # Enroll seals; either kind is accepted (a migration)


@dataclass(frozen=True, slots=True)
class SealedTemplate:
    """A sealed template as a caller sent it, not yet opened."""

    blob: bytes
    #: The model tag sent beside it (Embedding.model), "" when none; checked against the
    #: authenticated one inside.
    model: str = ""
    #: How many plain values came with it (there should be none).
    plain_values: int = 0


#: What a caller may send where a template goes.
Template = StoredEmbedding | SealedTemplate


@dataclass(frozen=True, slots=True)
class Exported:
    """A template as Enroll and Reseal hand it out: values or a sealed blob."""

    model: str
    values: FloatArray | None = None
    sealed: bytes = b""
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class Opened:
    """What an opened blob held."""

    values: FloatArray
    model: str
    key_id: str
    created: int


class _Refused(Exception):
    """A blob that does not open: `problem` is its machine-readable kind."""

    def __init__(self, problem: str, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.metadata = metadata

    def at(self, what: str, index: int) -> TemplateInvalidError:
        return TemplateInvalidError(
            f"{what}[{index}]: {self.message}", index=index, problem=self.problem, **self.metadata
        )


@dataclass(frozen=True, slots=True)
class _Header:
    key_id: str
    model: str
    dimension: int
    created: int
    #: Where the nonce starts: the associated data is blob[:aad_end].
    aad_end: int
    #: Where the creation time starts: blob[:fixed_end] is the same for every template
    #: of one key, model and dimension.
    fixed_end: int

    @property
    def length(self) -> int:
        return self.aad_end + NONCE_BYTES + 4 * self.dimension + TAG_BYTES


def _header(blob: bytes, version: int = VERSION) -> _Header:
    """Parse a blob's header; every way it can be malformed is a _Refused."""
    if len(blob) < 3 or blob[:2] != MAGIC:
        raise _Refused("not_sealed", "not a sealed template")
    if blob[2] != version:
        raise _Refused("version", f"sealed template version {blob[2]} is not supported here", version=blob[2])
    try:
        key_length = blob[3]
        key_id = blob[4 : 4 + key_length].decode("ascii")
        model_at = 4 + key_length
        model_length = blob[model_at]
        model = blob[model_at + 1 : model_at + 1 + model_length].decode("utf-8")
        fixed_end = model_at + 1 + model_length + 2
        dimension, created = _DIMENSION_AND_CREATED.unpack_from(blob, fixed_end - 2)
    except (IndexError, UnicodeDecodeError, struct.error):
        raise _Refused("malformed", "the sealed template is truncated or malformed") from None
    if not _KEY_ID.fullmatch(key_id) or len(model) != model_length or not dimension:
        raise _Refused("malformed", "the sealed template is truncated or malformed")
    header = _Header(key_id, model, dimension, created, fixed_end + 8, fixed_end)
    if version == GALLERY_VERSION:
        return header
    if len(blob) != header.length:
        raise _Refused("malformed", "the sealed template is truncated or malformed")
    return header


def _associated_data(version: int, key_id: str, model: str, dimension: int, created: int) -> bytes:
    key, tag = key_id.encode("ascii"), model.encode("utf-8")
    return b"".join(
        (
            MAGIC,
            bytes((version, len(key))),
            key,
            bytes((len(tag),)),
            tag,
            _DIMENSION_AND_CREATED.pack(dimension, created),
        )
    )


_COUNT = struct.Struct(">I")


class KeyRing:
    """Template keys: the first seals, all open. Immutable; a reload makes a new ring."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("the key ring is empty")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self.current_id = keys[0][0]
        self.key_ids = tuple(key_id for key_id, _ in keys)

    @classmethod
    def parse(cls, text: str, source: str = "the key ring") -> KeyRing:
        """`id:base64key` lines (32-byte keys); blank lines and `#` comments are skipped."""
        keys: list[tuple[str, bytes]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key_id, colon, encoded = line.partition(":")
            where = f"{source}, line {number}"
            if not colon or not _KEY_ID.fullmatch(key_id.strip()):
                raise ValueError(
                    f"{where}: expected id:base64key with an id of letters, digits, '.', '_', '-'"
                )
            key_id = key_id.strip()
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{where}: key {key_id!r} is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise ValueError(f"{where}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
            if any(key_id == known for known, _ in keys):
                raise ValueError(f"{where}: key id {key_id!r} appears twice")
            keys.append((key_id, key))
        if not keys:
            raise ValueError(f"{source} holds no key")
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a key file, refusing one that group or others may read or write."""
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(
                f"{path} is open to group or others (mode {stat.S_IMODE(mode):04o}); "
                f"template keys must be readable by the service's user only: chmod 600 {path}"
            )
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    @staticmethod
    def generate_line(key_id: str) -> str:
        """A new key file line, `id:base64key`."""
        return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    def seal(self, values: FloatArray, model: str, created: int | None = None) -> bytes:
        """`values` sealed under the current key, with a fresh random nonce."""
        when = int(time.time()) if created is None else created
        aad = _associated_data(VERSION, self.current_id, model, values.size, when)
        nonce = os.urandom(NONCE_BYTES)
        data = np.ascontiguousarray(values, dtype="<f4").tobytes()
        return aad + nonce + self._keys[self.current_id].encrypt(nonce, data, aad)

    def seal_gallery(self, ids: Sequence[str], matrix: FloatArray, model: str) -> bytes:
        """A whole gallery, rows and ids, sealed as one blob under the current key."""
        if any("\0" in identity or not identity for identity in ids):
            raise EmbeddingInvalidError("Gallery ids must be non-empty and hold no NUL character.")
        count, dimension = matrix.shape
        aad = _associated_data(GALLERY_VERSION, self.current_id, model, dimension, int(time.time()))
        aad += _COUNT.pack(count)
        nonce = os.urandom(NONCE_BYTES)
        data = np.ascontiguousarray(matrix, dtype="<f4").tobytes() + "\0".join(ids).encode("utf-8")
        return aad + nonce + self._keys[self.current_id].encrypt(nonce, data, aad)

    def open_gallery(self, blob: bytes) -> tuple[list[str], FloatArray, str]:
        """A sealed gallery's ids, (N, D) rows and model; _Refused when it does not open."""
        header = _header(blob, GALLERY_VERSION)
        key = self._key(header)
        aad_end = header.aad_end + _COUNT.size
        nonce_end = aad_end + NONCE_BYTES
        if len(blob) < nonce_end + TAG_BYTES:
            raise _Refused("malformed", "the sealed gallery is truncated or malformed")
        (count,) = _COUNT.unpack_from(blob, header.aad_end)
        try:
            data = key.decrypt(blob[aad_end:nonce_end], blob[nonce_end:], blob[:aad_end])
        except InvalidTag:
            raise _Refused(
                "authentication", "the sealed gallery does not authenticate (altered, or another key)"
            ) from None
        size = 4 * count * header.dimension
        ids = data[size:].decode("utf-8").split("\0") if count else []
        if len(data) < size or len(ids) != count:  # authenticated, so only a bug of ours
            raise _Refused("malformed", "the sealed gallery is malformed")
        rows = np.frombuffer(data, dtype="<f4", count=count * header.dimension).reshape(
            count, header.dimension
        )
        return ids, rows.astype(np.float32, copy=False), header.model

    def _key(self, header: _Header) -> AESGCM:
        key = self._keys.get(header.key_id)
        if key is None:
            raise _Refused(
                "unknown_key",
                f"it was sealed with key {header.key_id!r}, which this service does not hold",
                key_id=header.key_id,
            )
        return key

    def open(self, blob: bytes) -> Opened:
        """The values inside one blob; _Refused when it does not authenticate."""
        header = _header(blob)
        key = self._key(header)
        nonce_end = header.aad_end + NONCE_BYTES
        try:
            data = key.decrypt(blob[header.aad_end : nonce_end], blob[nonce_end:], blob[: header.aad_end])
        except InvalidTag:
            raise _Refused(
                "authentication", "the sealed template does not authenticate (altered, or another key)"
            ) from None
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
        return Opened(values, header.model, header.key_id, header.created)

    def open_rows(
        self, blobs: Sequence[bytes], what: str, model_tag: str = ""
    ) -> tuple[FloatArray, list[str]]:
        """Many blobs into one (N, D) matrix and each row's model. When every row is shaped
        like the first (the same key, model and dimension: a gallery's usual case) the
        slicing and decrypting run in C loops (map), about 1 us a row; otherwise, or when a
        row does not open, row by row, which also finds the index of the bad one."""
        try:
            first = _header(blobs[0])
            key = self._key(first)
        except _Refused as refused:
            raise refused.at(what, 0) from None
        prefix, length = blobs[0][: first.fixed_end], first.length
        aad_end, nonce_end = first.aad_end, first.aad_end + NONCE_BYTES
        if set(map(len, blobs)) == {length} and all(map(bytes.startswith, blobs, repeat(prefix))):
            nonces = map(itemgetter(slice(aad_end, nonce_end)), blobs)
            sealed = map(itemgetter(slice(nonce_end, None)), blobs)
            aads = map(itemgetter(slice(None, aad_end)), blobs)
            try:
                data = b"".join(map(key.decrypt, nonces, sealed, aads))
            except InvalidTag:
                pass  # row by row below, to name the row
            else:
                if model_tag:
                    _check_tag(model_tag, [first.model], what)
                matrix = np.frombuffer(data, dtype="<f4").reshape(len(blobs), first.dimension)
                return matrix.astype(np.float32, copy=False), [first.model] * len(blobs)
        count, step = len(blobs), 4 * first.dimension
        matrix = np.empty((count, first.dimension), dtype="<f4")
        rows = matrix.data.cast("B")
        models = [first.model] * count
        decrypt_into = key.decrypt_into
        for index, blob in enumerate(blobs):
            try:
                if len(blob) == length and blob.startswith(prefix):
                    decrypt_into(
                        blob[aad_end:nonce_end],
                        blob[nonce_end:],
                        blob[:aad_end],
                        rows[index * step : (index + 1) * step],
                    )
                    continue
                opened = self.open(blob)
            except InvalidTag:
                raise _Refused(
                    "authentication", "the sealed template does not authenticate (altered, or another key)"
                ).at(what, index) from None
            except _Refused as refused:
                raise refused.at(what, index) from None
            if opened.values.size != first.dimension:
                raise EmbeddingInvalidError(
                    f"{what}[{index}] holds {opened.values.size} values; {what}[0] holds {first.dimension}.",
                    index=index,
                    length=opened.values.size,
                    expected_length=first.dimension,
                )
            matrix[index] = opened.values
            models[index] = opened.model
        if model_tag:
            _check_tag(model_tag, models, what)
        return matrix.astype(np.float32, copy=False), models


def _check_tag(model_tag: str, models: Sequence[str], what: str) -> None:
    """A model tag sent beside a blob must be the one sealed inside it (a swapped tag)."""
    for index, model in enumerate(models):
        if model != model_tag:
            raise TemplateInvalidError(
                f"{what}[{index}] is tagged {model_tag!r} but was sealed as another model's template.",
                index=index,
                problem="model_tag",
            )


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
        except _Refused as refused:
            raise refused.at(what, index) from None
        if template.model:
            _check_tag(template.model, [opened.model], f"{what}[{index}]")
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
            except _Refused as refused:
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
