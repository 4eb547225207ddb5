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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facesvc.engine.types import FloatArray, StoredEmbedding
from facesvc.errors import EmbeddingInvalidError, TemplateInvalidError

log = logging.getLogger("facesvc.security")

MAGIC = b"\xfa\xce"
VERSION = 1
GALLERY_VERSION = 2
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIMENSION_AND_CREATED = struct.Struct(">HQ")


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


class Refused(Exception):
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
    """Parse a blob's header; every way it can be malformed is a Refused."""
    if len(blob) < 3 or blob[:2] != MAGIC:
        raise Refused("not_sealed", "not a sealed template")
    if blob[2] != version:
        raise Refused("version", f"sealed template version {blob[2]} is not supported here", version=blob[2])
    try:
        key_length = blob[3]
        key_id = blob[4 : 4 + key_length].decode("ascii")
        model_at = 4 + key_length
        model_length = blob[model_at]
        model = blob[model_at + 1 : model_at + 1 + model_length].decode("utf-8")
        fixed_end = model_at + 1 + model_length + 2
        dimension, created = _DIMENSION_AND_CREATED.unpack_from(blob, fixed_end - 2)
    except (IndexError, UnicodeDecodeError, struct.error):
        raise Refused("malformed", "the sealed template is truncated or malformed") from None
    if not _KEY_ID.fullmatch(key_id) or len(model) != model_length or not dimension:
        raise Refused("malformed", "the sealed template is truncated or malformed")
    header = _Header(key_id, model, dimension, created, fixed_end + 8, fixed_end)
    if version == GALLERY_VERSION:
        return header
    if len(blob) != header.length:
        raise Refused("malformed", "the sealed template is truncated or malformed")
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
        """A sealed gallery's ids, (N, D) rows and model; Refused when it does not open."""
        header = _header(blob, GALLERY_VERSION)
        key = self._key(header)
        aad_end = header.aad_end + _COUNT.size
        nonce_end = aad_end + NONCE_BYTES
        if len(blob) < nonce_end + TAG_BYTES:
            raise Refused("malformed", "the sealed gallery is truncated or malformed")
        (count,) = _COUNT.unpack_from(blob, header.aad_end)
        try:
            data = key.decrypt(blob[aad_end:nonce_end], blob[nonce_end:], blob[:aad_end])
        except InvalidTag:
            raise Refused(
                "authentication", "the sealed gallery does not authenticate (altered, or another key)"
            ) from None
        size = 4 * count * header.dimension
        ids = data[size:].decode("utf-8").split("\0") if count else []
        if len(data) < size or len(ids) != count:  # authenticated, so only a bug of ours
            raise Refused("malformed", "the sealed gallery is malformed")
        rows = np.frombuffer(data, dtype="<f4", count=count * header.dimension).reshape(
            count, header.dimension
        )
        return ids, rows.astype(np.float32, copy=False), header.model

    def _key(self, header: _Header) -> AESGCM:
        key = self._keys.get(header.key_id)
        if key is None:
            raise Refused(
                "unknown_key",
                f"it was sealed with key {header.key_id!r}, which this service does not hold",
                key_id=header.key_id,
            )
        return key

    def open(self, blob: bytes) -> Opened:
        """The values inside one blob; Refused when it does not authenticate."""
        header = _header(blob)
        key = self._key(header)
        nonce_end = header.aad_end + NONCE_BYTES
        try:
            data = key.decrypt(blob[header.aad_end : nonce_end], blob[nonce_end:], blob[: header.aad_end])
        except InvalidTag:
            raise Refused(
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
        except Refused as refused:
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
                    check_tag(model_tag, [first.model], what)
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
                raise Refused(
                    "authentication", "the sealed template does not authenticate (altered, or another key)"
                ).at(what, index) from None
            except Refused as refused:
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
            check_tag(model_tag, models, what)
        return matrix.astype(np.float32, copy=False), models


def check_tag(model_tag: str, models: Sequence[str], what: str) -> None:
    """A model tag sent beside a blob must be the one sealed inside it (a swapped tag)."""
    for index, model in enumerate(models):
        if model != model_tag:
            raise TemplateInvalidError(
                f"{what}[{index}] is tagged {model_tag!r} but was sealed as another model's template.",
                index=index,
                problem="model_tag",
            )
