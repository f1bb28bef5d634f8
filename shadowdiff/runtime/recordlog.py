"""The sidecar's recorded log: tap records appended to rotating msgpack files on disk.

Each file opens with a header holding every slot's state at that point, so any file replays alone
(``shadowdiff replay FILE --authoritative recorded``) and any file start is a resync point. Rotation by
size and age, fsync on rotate. The checker reads the files back, so a slow shadow costs disk, not memory.

A write that fails (disk full, a file-size limit) is undone (the file is cut back to its last whole
record, so what is on disk stays replayable), its step and call records are counted as ``unrecorded``,
and the next write that succeeds first writes a snapshot of every slot (or the header, if the file has
none yet): the checker resyncs there, so nothing it checks afterwards rests on the records that were lost.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from shadowdiff.model.values import Context
from shadowdiff.runtime.private import open_private, private_dir
from shadowdiff.wire.codec import apply_delta, packb
from shadowdiff.wire.format import log_header


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
        self.unrecorded = 0  # step and call records that could not be written
        self.write_errors = 0
        self.last_write_error: str | None = None
        self._resync = False  # a write failed: the next one starts with every slot's snapshot
        self._needs_header = False  # the current file's header could not be written yet
        self.changed = threading.Condition(self.lock)
        with self.lock:
            self._open_next()

    def _open_next(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._stream.fileno())
            self._stream.close()
            self.files[-1].closed = True
        path = self.directory / f"{self._stem}-{len(self.files) + 1:05d}.msgpack"
        self._stream = open_private(path, "wb", buffering=0)  # every write reaches the file or fails here
        self._opened = time.monotonic()
        self.files.append(LogFile(path))
        self._needs_header = not self._write(self._header(), 0)

    def _header(self) -> bytes:
        provenance = {"source": "shadowdiff sidecar", "host": socket.gethostname(), "started": time.time(),
                      "synthetic": self.synthetic}  # fmt: skip
        return packb(log_header({name: dict(spec) for name, spec in self.slots.items()}, provenance))

    def _write(self, data: bytes, records: int) -> bool:
        """All of ``data`` appended to the current file, or none of it (False, the error counted)."""
        assert self._stream is not None
        current = self.files[-1]
        try:
            done = 0
            while done < len(data):
                wrote = self._stream.write(data[done:])
                if not wrote:
                    raise OSError("no progress writing the log")
                done += wrote
        except OSError as exc:
            self.write_errors += 1
            self.last_write_error = f"{current.path.name}: {exc.strerror or exc}"
            self.unrecorded += records
            self._resync = True
            try:
                self._stream.seek(current.size)
                self._stream.truncate(current.size)  # back to the last whole record
            except OSError:
                pass
            return False
        current.size += len(data)
        current.records += records
        self.total_bytes += len(data)
        return True

    def append(self, records: list[tuple[dict[str, Any], bytes]]) -> None:
        with self.lock:
            prefix = b""
            if self._needs_header:  # the file has no header yet: it resyncs every slot
                prefix = self._header()
            elif self._resync:  # records were lost: every slot's state before this frame, then the frame
                prefix = b"".join(packb(self._snapshot(name, spec)) for name, spec in self.slots.items())
            steps = 0
            for record, _ in records:
                self._follow(record)
                steps += record["kind"] in ("step", "call")
            # one write a frame, not a record
            if self._write(prefix + b"".join(raw for _, raw in records), steps):
                self._resync = self._needs_header = False
            if (
                self.files[-1].size >= self.rotate_bytes
                or time.monotonic() - self._opened >= self.rotate_seconds
            ):
                self._open_next()
            self.changed.notify_all()

    @staticmethod
    def _snapshot(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"kind": "snapshot", "slot": name, "state": spec["state"], "context": spec["context"]}

    def _follow(self, record: Mapping[str, Any]) -> None:
        kind = record["kind"]
        if kind == "snapshot":
            context = Context.from_wire(record.get("context") or {}).to_wire()
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
                with contextlib.suppress(OSError):
                    os.fsync(self._stream.fileno())
                self._stream.close()
                self._stream = None
                self.files[-1].closed = True
            self.changed.notify_all()
