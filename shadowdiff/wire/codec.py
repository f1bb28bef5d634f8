"""Wire encodings (msgpack, JSON) and the canonical state delta of PROTOCOL.md.

A delta is ``{"set": {field: value}, "append": {field: [items]}}`` over a state's top-level fields.
``append`` is used for a list field exactly when the new list is the old one with items added at its
end; any other change is a ``set``. Equal deltas from equal pre-states mean equal post-states, so the
engine never needs to compare whole states.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import msgpack

from shadowdiff.model.values import WireMap
from shadowdiff.wire.identity import compute_delta, make_delta, same_value

__all__ = [
    "apply_delta", "compute_delta", "dumps_json", "make_delta", "make_unpacker", "packb", "same_value",
    "unpackb",
]  # fmt: skip


_local = threading.local()


def packb(value: Any) -> bytes:
    """msgpack bytes: str as UTF-8 str, floats as float64, bytes as bin.

    One Packer per thread, made once: ``msgpack.packb`` builds a Packer per call, which costs more
    than packing a small request (0.7 us of 1.2)."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    out: bytes = packer.pack(value)
    return out


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def make_unpacker(max_bytes: int = 1 << 30) -> msgpack.Unpacker:
    """A streaming unpacker whose buffer (and so any one object, and every claimed length) is at most
    ``max_bytes``: past it ``feed`` raises ``msgpack.BufferFull``."""
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max_bytes)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not a wire value: {type(value).__name__}")


def dumps_json(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """JSON for files: NaN and infinities kept (Python's json reads them back), bytes as hex."""
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=_json_default, ensure_ascii=False)


def apply_delta(state: WireMap, delta: Mapping[str, Any], *, in_place: bool = False) -> WireMap:
    """``state`` changed by ``delta``. With ``in_place`` appended lists grow where they are (O(delta)),
    otherwise a new top-level map is returned and lists that grow are copied."""
    if not delta:
        return state
    out = state if in_place else dict(state)
    for key, value in delta.get("set", {}).items():
        # a list set here may later grow in place: the state gets its own, the delta stays as it was
        out[key] = list(value) if in_place and isinstance(value, list) else value
    for key, items in delta.get("append", {}).items():
        current = out.get(key)
        if not isinstance(current, list):
            current = []
        if in_place:
            current.extend(items)
            out[key] = current
        else:
            out[key] = [*current, *items]
    return out
