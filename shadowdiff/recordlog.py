"""The sidecar's recorded log: tap records appended to rotating msgpack files on disk.

Each file opens with a header holding every slot's state at that point, so any file replays alone
(``shadowdiff replay FILE --authoritative recorded``) and any file start is a resync point. Rotation by
size and age, fsync on rotate. The checker reads the files back, so a slow shadow costs disk, not memory.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from .codec import apply_delta, packb
from .corpus import LOG_FORMAT
from .model import Context
from .private import open_private, private_dir


@attrs.define
class LogFile:
    path: Path
    size: int = 0
    records: int = 0  # step and call records
    closed: bool = False


class RotatingLog:
    """Appends tap records to ``DIR/live-<start>-<n>.msgpack``; rotates by size and age (fsync on rotate).

    Keeps each slot's current state (deltas applied in place, O(delta)) so that every new file opens
    with a header holding all slots: any file is replayable alone, and any file start is a resync point.
    """

    def __init__(self, directory: Path, rotate_bytes: int, rotate_seconds: float, synthetic: bool) -> None:
        self.directory = directory
        private_dir(directory)  # the bot's orders, txids and P&L: 0700, files 0600
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.synthetic = synthetic
        self.lock = threading.Lock()
        self.files: list[LogFile] = []
        self.slots: dict[str, dict[str, Any]] = {}
        self.total_bytes = 0
        self._stem = time.strftime("live-%Y%m%dT%H%M%S", time.gmtime())
        self._stream: IO[bytes] | None = None
        self._opened = 0.0
        self.changed = threading.Condition(self.lock)
        with self.lock:
            self._open_next()

    def _open_next(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self.files[-1].closed = True
        path = self.directory / f"{self._stem}-{len(self.files) + 1:05d}.msgpack"
        self._stream = open_private(path, "wb")
        self._opened = time.monotonic()
        self.files.append(LogFile(path))
        provenance = {"source": "shadowdiff sidecar", "host": socket.gethostname(), "started": time.time(),
                      "synthetic": self.synthetic}  # fmt: skip
        header = {"kind": "header", "format": LOG_FORMAT, "version": 1, "provenance": provenance,
                  "slots": {name: dict(spec) for name, spec in self.slots.items()}}  # fmt: skip
        self._write(packb(header), 0)

    def _write(self, data: bytes, records: int) -> None:
        assert self._stream is not None
        self._stream.write(data)
        current = self.files[-1]
        current.size += len(data)
        current.records += records
        self.total_bytes += len(data)

    def append(self, records: list[tuple[dict[str, Any], bytes]]) -> None:
        with self.lock:
            steps = 0
            for record, _ in records:
                self._follow(record)
                steps += record["kind"] in ("step", "call")
            self._write(b"".join(raw for _, raw in records), steps)  # one write a frame, not a record
            assert self._stream is not None
            self._stream.flush()
            self.files[-1].size = self._stream.tell()
            if (
                self.files[-1].size >= self.rotate_bytes
                or time.monotonic() - self._opened >= self.rotate_seconds
            ):
                self._open_next()
            self.changed.notify_all()

    def _follow(self, record: Mapping[str, Any]) -> None:
        kind = record["kind"]
        if kind == "snapshot":
            context = Context().updated(record.get("context") or {}).to_wire()
            self.slots[record["slot"]] = {"context": context, "state": dict(record["state"])}
            return
        spec = self.slots.get(record.get("slot"))  # type: ignore[arg-type]
        if spec is None:
            return
        if kind == "context":
            spec["context"] = {**spec["context"], **record["context"]}
        elif kind == "patch":
            apply_delta(spec["state"], record["delta"], in_place=True)
        elif kind in ("step", "call"):
            if kind == "step" and record.get("context"):
                spec["context"] = {**spec["context"], **record["context"]}
            apply_delta(spec["state"], record["outcome"]["delta"], in_place=True)

    def knows(self, slot: str) -> bool:
        return slot in self.slots

    def rotate(self) -> int:
        """Start a new file now; its index."""
        with self.lock:
            self._open_next()
            self.changed.notify_all()
            return len(self.files) - 1

    def maybe_rotate(self) -> None:
        with self.lock:
            if self.files[-1].size > 0 and time.monotonic() - self._opened >= self.rotate_seconds:
                self._open_next()

    def close(self) -> None:
        with self.lock:
            if self._stream is not None:
                self._stream.flush()
                os.fsync(self._stream.fileno())
                self._stream.close()
                self._stream = None
                self.files[-1].closed = True
            self.changed.notify_all()
