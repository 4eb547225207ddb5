"""Limits the HTTP handlers apply to what a caller sends: the nesting and the number of
values of a JSON body or form field, counted in C before Python builds any of it (ten
million empty arrays fit in 20 MB of JSON and take 500 MB as Python lists; a deep
nesting ends json.loads in a RecursionError), and how long a WebSocket may sit idle."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from facesvc import errors

#: Every byte but those that shape JSON: brackets, commas, quotes and backslashes.
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{},"\\')))
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = np.frombuffer(b"[{", np.uint8)


@dataclass(frozen=True)
class HttpLimits:
    """facesvc.config's http_max_json_* and http_websocket_idle_seconds."""

    max_json_depth: int
    max_json_values: int
    websocket_idle_seconds: float


def check_json(data: bytes | str, limits: HttpLimits, what: str = "The body") -> None:
    """REQUEST_INVALID when `data` nests deeper or holds more values than `limits` allow.

    The count is of the structure alone (strings removed): values are the commas and
    the arrays and objects, depth the running count of brackets opened."""
    raw = data.encode() if isinstance(data, str) else data
    structure = _STRING.sub(b"", raw.translate(None, _NOT_STRUCTURE))
    values = structure.count(b",") + 1
    brackets = structure.translate(None, b',"\\')
    values += len(brackets) // 2
    if values > limits.max_json_values:
        raise errors.RequestInvalidError(
            f"{what} holds more than {limits.max_json_values} JSON values.",
            max_json_values=limits.max_json_values,
        )
    if not brackets:
        return
    steps = np.where(np.isin(np.frombuffer(brackets, np.uint8), _OPEN), 1, -1)
    depth = int(np.cumsum(steps).max())
    if depth > limits.max_json_depth:
        raise errors.RequestInvalidError(
            f"{what} nests JSON deeper than {limits.max_json_depth} levels.",
            max_json_depth=limits.max_json_depth,
        )
