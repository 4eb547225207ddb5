"""The signed liveness result: a compact token a caller's backend checks with the key.

    base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))

both without padding; the payload is a JSON object (see `claims`). The SDK's
`facesvc_client.verify_liveness_token` checks it; this module only signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import numpy as np

from facesvc.engine.types import FloatArray

VERSION = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def embedding_digest(embedding: FloatArray | None) -> str:
    """SHA-256 (hex) of the embedding as little-endian float32, as it goes on the wire."""
    if embedding is None:
        return ""
    return hashlib.sha256(np.asarray(embedding, dtype="<f4").tobytes()).hexdigest()


def sign(key: bytes, claims: dict[str, object]) -> str:
    """The token of `claims` under `key`."""
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    tag = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(tag)}"
