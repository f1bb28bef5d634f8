"""The sidecar's checker: reads the recorded log back from disk and checks it against the shadow.

It runs in a process of its own (``python -m shadowdiff.live.checker FD``, started by the sidecar, the
default) or as a thread of the sidecar (``--one-process``); the code is the same. It feeds the log to
the engine's recorded-outcome path (``Replay`` with ``authoritative=None``, lockstep): if the shadow
falls behind, the lag is bytes on disk, never memory; past ``max_lag_bytes`` it jumps to a fresh file
start (the sidecar rotates the log for it) and counts what it skipped.

Every ``SNAPSHOT_SECONDS`` while it works (and whenever it waits) it drains the shadow's window and
publishes a *snapshot*: its counts, which are consistent with each other (nothing in flight), the
findings since the last snapshot, and its position in the log (file, offset of the last whole record
read). The sidecar's status adds its own counts to the last snapshot; a checker started again after one
died resumes at that position (the file's header and the records before it give every slot's state,
nothing is sent to the shadow for them), so nothing received is lost or counted twice.

The process's side of the channel to the sidecar (a socket pair, ``multiprocessing.connection``
framing): the sidecar sends the options and the resume point, then the log's files as they grow
(``files``), ``rotated`` answers and ``stop``; the checker sends ``snapshot`` (with its findings),
``rotate`` (it is past the lag budget) and ``done``. The process dies with the sidecar (the kernel's
parent-death signal on Linux, and the channel's end of file) and its shadow with it (its stdin closes).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import attrs

from shadowdiff.core.diff import Rules
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.core.reducer import ForwardingShadow, Request, Result, Shadow
from shadowdiff.core.triage import Triage
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import Gap, Record, Snapshot
from shadowdiff.model.values import Context
from shadowdiff.runtime.authority import die_with
from shadowdiff.runtime.corpus import RecordReader, slot_context
from shadowdiff.runtime.recordlog import LogFile, RotatingLog
from shadowdiff.wire.codec import apply_delta, make_unpacker

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
SNAPSHOT_SECONDS = 0.5  # how often a busy checker drains and publishes (a drain idles the shadow)
IDLE_SNAPSHOT_SECONDS = 0.02  # a checker caught up publishes this long after its last snapshot at most
READ_BYTES = 1 << 16
# the snapshot's fields that count: a checker started again adds to what the ones before it counted
ADDITIVE = ("taken", "checked", "calls_checked", "restarts", "gave_up", "skipped", "unchecked_by",
            "known_divergences", "known_failures", "unreadable", "checker_errors", "latency")  # fmt: skip


@attrs.frozen
class CheckerOptions:
    """What a checker needs (pickled to the checker's process: the shadow factory must pickle)."""

    shadow: Callable[[], Shadow]
    rules: Rules = attrs.field(factory=Rules)
    known: Triage | None = None
    window: int = 256
    max_lag_bytes: int = 256 << 20
    drain_seconds: float = 10.0
    start: Context | None = None
    """The context a slot starts from (the domain's parameters at their defaults, ``context_start()`` in
    the sidecar's process, where the command named the domain); None: contexts as the log has them."""


@attrs.frozen
class Position:
    """Where a checker is in the log: file ``index``, ``offset`` of the last whole record read in it,
    ``consumed`` bytes of the whole log behind it, and the steps and calls read in that file."""

    index: int = 0
    offset: int = 0
    consumed: int = 0
    records_here: int = 0


class LogView(Protocol):
    """The recorded log as the checker sees it: its files (growing), the bytes written, and a way to
    start a new file (for a jump past the lag budget)."""

    @property
    def files(self) -> list[LogFile]: ...

    @property
    def total_bytes(self) -> int: ...

    def rotate(self) -> int | None: ...

    def wait(self, timeout: float) -> None: ...

    def refresh(self) -> None: ...


class LocalLog:
    """The sidecar's own ``RotatingLog``, for a checker running as a thread next to it."""

    def __init__(self, log: RotatingLog) -> None:
        self.log = log

    @property
    def files(self) -> list[LogFile]:
        return self.log.files

    @property
    def total_bytes(self) -> int:
        return self.log.total_bytes

    def rotate(self) -> int | None:
        return self.log.rotate()

    def wait(self, timeout: float) -> None:
        with self.log.lock:
            self.log.changed.wait(timeout)

    def refresh(self) -> None:
        pass


class RemoteLog:
    """The log as the sidecar's process tells it over the channel (the files, their sizes and step
    counts, which are closed); ``stopping`` once the sidecar said stop or went away."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.files: list[LogFile] = []
        self.total_bytes = 0
        self.stopping = False
        self.gone = False
        self._rotated: int | None = None

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "files":
            _, start, rows, total = message
            del self.files[start:]
            self.files += [LogFile(Path(p), size, records, closed) for p, size, records, closed in rows]
            self.total_bytes = total
        elif kind == "rotated":
            self._rotated = message[1]
        elif kind == "stop":
            self.stopping = True

    def _receive(self, timeout: float) -> bool:
        try:
            if not self.conn.poll(timeout):
                return False
            self._handle(self.conn.recv())
        except (EOFError, OSError):
            self.gone = self.stopping = True
            return False
        return True

    def refresh(self) -> None:
        while self._receive(0):
            pass

    def wait(self, timeout: float) -> None:
        if self._receive(timeout):
            self.refresh()

    def rotate(self) -> int | None:
        self._rotated = None
        self.conn.send(("rotate",))
        deadline = time.monotonic() + 30.0
        while (self._rotated is None or len(self.files) <= self._rotated) and not self.gone:
            if time.monotonic() > deadline:
                break
            self._receive(0.1)
        if self._rotated is None or len(self.files) <= self._rotated:
            return None  # the sidecar did not answer: no jump this time
        rotated: int = self._rotated
        return rotated


class TimedShadow(ForwardingShadow):
    """Forwards the shadow interface to the real shadow (its liveness, restarts and sessions included)
    and observes, per request, the time from submit to answer (into ``latency``)."""

    def __init__(self, inner: Shadow, latency: Latency) -> None:
        super().__init__(inner)
        self._sent: dict[int, float] = {}
        self._latency = latency

    def submit(self, request: Request) -> int:
        ticket = self.inner.submit(request)
        self._sent[ticket] = time.perf_counter()
        return ticket

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        got = self.inner.poll(wait)
        now = time.perf_counter()
        pop, observe = self._sent.pop, self._latency.observe
        for ticket, _ in got:
            sent = pop(ticket, None)
            if sent is not None:
                observe(now - sent)
        return got


class Latency:
    """The shadow's answer times: Prometheus buckets (counts, not cumulative), sum, and the recent ones
    for quantiles. Plain numbers, so a snapshot can carry them to the sidecar's process."""

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.recent: collections.deque[float] = collections.deque(maxlen=4096)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds
        self.recent.append(seconds)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.recent)
        return {"buckets": list(self.buckets), "sum": self.sum, "count": sum(self.buckets),
                "p50": _quantile(ordered, 0.5), "p99": _quantile(ordered, 0.99)}  # fmt: skip


@attrs.define
class _Totals:
    """What earlier shadows of this checker counted (a shadow that gives up is replaced)."""

    fed: int = 0
    checked: int = 0
    calls_checked: int = 0
    unchecked: int = 0
    failed: int = 0
    restarts: int = 0
    gave_up: int = 0
    known: collections.Counter[str] = attrs.field(factory=collections.Counter)


class Checker:
    """Checks the log from ``start`` on; ``publish(snapshot, findings)`` gets each drained snapshot."""

    def __init__(
        self,
        options: CheckerOptions,
        log: LogView,
        publish: Callable[[dict[str, Any], list[dict[str, Any]]], None],
        start: Position | None = None,
    ) -> None:
        self.options = options
        self.log = log
        self.publish = publish
        self.start = start or Position()
        self.latency = Latency()
        self.counts: collections.Counter[str] = collections.Counter()
        self.findings: list[dict[str, Any]] = []
        self.error: tuple[int, str | None] = (0, None)  # (how many, the last) errors of ours
        self.executable_available = False
        self._shadow: TimedShadow | None = None
        self._replay: Replay | None = None
        self._totals = _Totals()
        self._follow: dict[str, dict[str, Any]] = {}  # slot states while no shadow runs
        self._position = self.start
        self._consumed = self.start.consumed
        self._next_shadow_attempt = 0.0

    # -- the shadow ----------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        self.error = (self.error[0] + 1, message)

    def _new_shadow(self) -> None:
        """A fresh shadow and engine (the first, or one replacing a shadow that gave up), opened on every
        slot's state at the point reached (the engine's mirrors, or the states followed without one)."""
        states = self._states()
        if self._replay is not None:
            result = self._replay.result
            done = self._replay.coverage()  # drained: nothing in flight
            self._totals.fed += done.fed
            self._totals.checked += done.checked
            self._totals.unchecked += done.unchecked + done.in_flight
            self._totals.failed += done.failed
            self._totals.calls_checked += result.shadow_checks["call"]
            self._totals.known.update({k: result.counts[k] for k in ("known_divergences", "known_failures")})
        if self._shadow is not None:
            self._totals.restarts += self._shadow.restarts + 1
            self._totals.gave_up += self._shadow.dead is not None
            self._shadow.close()
        self._replay, self._shadow = None, None
        self._next_shadow_attempt = time.monotonic() + 2.0
        try:
            inner = self.options.shadow()
        except ShadowdiffError as exc:
            self.executable_available = False
            self._say(f"setup: {exc}")
            self._follow = states
            return
        self._shadow = TimedShadow(inner, self.latency)
        self.executable_available = True
        options = ReplayOptions(mode="lockstep", rules=self.options.rules, window=self.options.window,
                                verify_final=False, known=self.options.known)  # fmt: skip
        self._replay = Replay(self._shadow, None, options, on_finding=self._found)
        self._follow = {}
        for name, (state, context) in states.items():
            self._replay.feed(Snapshot(name, state, context))

    def _states(self) -> dict[str, Any]:
        """Every slot's (state, context) at the point reached (drained first)."""
        if self._replay is None:
            start = self.options.start
            return {name: (spec["state"], slot_context(spec["context"], start))
                    for name, spec in self._follow.items()}  # fmt: skip
        self._replay.drain()
        return self._replay.slot_states()  # the engine's mirrors: the states as of the last record fed

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, stopping: Callable[[], bool]) -> None:
        """Check until ``stopping()``, then what is on disk within ``drain_seconds``; the last snapshot
        is published on the way out, whatever happens."""
        try:
            self._check_files(stopping)
        except Exception as exc:  # pragma: no cover - reported, never silent
            self.counts["checker_errors"] += 1
            self._say(f"checker stopped: {type(exc).__name__}: {exc}")
        finally:
            self._snapshot()
            if self._shadow is not None:
                self._shadow.close()

    def _open(self, index: int) -> tuple[Any, RecordReader, Any]:
        path = self.log.files[index].path
        return path.open("rb"), RecordReader(str(path), self.options.start), make_unpacker()

    def _check_files(self, stopping: Callable[[], bool]) -> None:
        start = self.start
        index, records_here = start.index, start.records_here
        stream, reader, unpacker = self._open(index)
        offset = whole_at = origin = 0  # origin: where in the file the unpacker started
        if start.offset:  # a checker started again: every slot's state up to where the last one was
            offset = whole_at = origin = self._fast_forward(stream, reader, start.offset)
        self._new_shadow()
        drain_until: float | None = None
        last_snapshot, dirty = time.monotonic(), True
        log = self.log
        try:
            while True:
                if stopping() and drain_until is None:
                    drain_until = time.monotonic() + self.options.drain_seconds
                if drain_until is not None and time.monotonic() > drain_until:
                    return
                current = log.files[index]
                size = current.size
                progressed = False
                if offset < size:
                    stream.seek(offset)
                    chunk = stream.read(min(size - offset, READ_BYTES))
                    offset += len(chunk)
                    # tell() counts the bytes of a record cut short too: measure from the last whole one
                    base, told = self._consumed, whole_at
                    unpacker.feed(chunk)
                    where = str(current.path)
                    for value in unpacker:
                        if isinstance(value, dict) and value.get("kind") in ("step", "call"):
                            records_here += 1
                        self._check_value(reader, value, where)
                    whole_at = origin + unpacker.tell()
                    self._consumed = base + whole_at - told
                    progressed = True
                elif current.closed and index + 1 < len(log.files):
                    stream.close()
                    index, offset, whole_at, origin, records_here = index + 1, 0, 0, 0, 0
                    stream, reader, unpacker = self._open(index)
                    progressed = True
                elif current.closed and stopping():
                    self._position = Position(index, whole_at, self._consumed, records_here)
                    return
                # too far behind: jump to a fresh file start (its header resyncs every slot)
                log.refresh()
                if log.total_bytes - self._consumed > self.options.max_lag_bytes and drain_until is None:
                    target = log.rotate()  # closes every earlier file: their counts are final
                    if target is None or target <= index:
                        continue
                    skipped = log.files[index].records - records_here
                    for between in log.files[index + 1 : target]:
                        skipped += between.records
                        self._consumed += between.size
                    self._consumed += log.files[index].size - whole_at  # a record cut short counts too
                    self.counts["skipped"] += max(0, skipped)
                    if self._replay is not None:
                        self._replay.drain()
                    stream.close()
                    index, offset, whole_at, origin, records_here = target, 0, 0, 0, 0
                    stream, reader, unpacker = self._open(index)
                self._position = Position(index, whole_at, self._consumed, records_here)
                dead = self._shadow is None or self._shadow.dead is not None
                if dead and time.monotonic() >= self._next_shadow_attempt:
                    self._new_shadow()
                now = time.monotonic()
                if progressed:
                    dirty = True
                    if now - last_snapshot > SNAPSHOT_SECONDS:
                        self._snapshot()
                        last_snapshot, dirty = now, False
                elif dirty and now - last_snapshot > IDLE_SNAPSHOT_SECONDS:
                    # caught up with what the log holds: publish (a drain per record trickling in
                    # would take the shadow's pipelining away)
                    self._snapshot()
                    last_snapshot, dirty = now, False
                else:
                    log.wait(IDLE_SNAPSHOT_SECONDS if dirty else 0.05)
        finally:
            stream.close()

    def _fast_forward(self, stream: Any, reader: RecordReader, until: int) -> int:
        """Follow every slot's state from the file's start to ``until`` (a whole record's end) without
        checking: the records before it were checked by the checker this one replaces."""
        data = stream.read(until)
        unpacker = make_unpacker()
        unpacker.feed(data)
        for value in unpacker:
            if reader.first:
                reader.first = False
            _follow(self._follow, value)
        reached: int = unpacker.tell()
        return reached

    def _check_value(self, reader: RecordReader, value: Any, where: str) -> None:
        replay = self._replay
        try:  # turning a record into items never warns: no warnings filter per record
            items = list(reader.item(value, where))
        except ShadowdiffError:
            self.counts["unreadable"] += 1
            self.counts["unreadable_steps"] += _is_step(value)
            return
        if replay is None:
            _follow(self._follow, value)
            self.counts["unchecked_no_shadow"] += sum(isinstance(item, Record) for item in items)
            return
        for item in items:
            if isinstance(item, Gap):
                continue  # counted when received
            try:
                if isinstance(item, Snapshot):
                    replay.drain()  # the engine must not apply older in-flight deltas to the new mirror
                replay.feed(item)
            except ShadowdiffError as exc:
                self.counts["unreadable"] += 1
                self.counts["unreadable_steps"] += isinstance(item, Record)
                self._say(f"record skipped: {exc}")

    # -- the snapshot --------------------------------------------------------------------------------
    def _snapshot(self) -> None:
        """Drain, then publish figures that agree with each other and the position they hold for."""
        replay, shadow, totals = self._replay, self._shadow, self._totals
        if replay is not None:
            replay.drain()
        now = replay.coverage() if replay is not None else None
        fed = totals.fed + (now.fed if now else 0)
        known = collections.Counter(totals.known)
        if replay is not None:
            known.update({k: replay.result.counts[k] for k in ("known_divergences", "known_failures")})
        counts = self.counts
        # every step or call taken from disk is exactly one of: checked, skipped, or unchecked by reason
        unchecked_by = {
            "shadow_failed": totals.failed + (now.failed if now else 0),  # each one a finding
            "not_compared": totals.unchecked + (now.unchecked if now else 0),  # shadow dead, slot
            # diverged (free mode), or refused its state
            "no_shadow": counts["unchecked_no_shadow"],  # no shadow running (it did not start)
            "unreadable": counts["unreadable_steps"],
        }
        snapshot = {
            "taken": fed
            + counts["skipped"]
            + unchecked_by["no_shadow"]
            + unchecked_by["unreadable"]
            - (now.in_flight if now else 0),
            "checked": totals.checked + (now.checked if now else 0),
            "calls_checked": totals.calls_checked + (replay.result.shadow_checks["call"] if replay else 0),
            "restarts": totals.restarts + (shadow.restarts if shadow is not None else 0),
            "gave_up": totals.gave_up + (shadow is not None and shadow.dead is not None),
            "skipped": counts["skipped"],
            "unchecked_by": unchecked_by,
            "known_divergences": known["known_divergences"],
            "known_failures": known["known_failures"],
            "unreadable": counts["unreadable"],
            "checker_errors": counts["checker_errors"],
            "latency": self.latency.figures(),
            "state": _shadow_state(shadow),
            "dead": shadow.dead if shadow is not None else None,
            "executable_available": shadow is not None and not shadow.dead,
            "error": self.error,
            "position": attrs.astuple(self._position),
            "consumed": self._consumed,
            "pid": os.getpid(),
        }
        findings, self.findings = self.findings, []
        self.publish(snapshot, findings)

    def _found(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)


def _follow(slots: dict[str, dict[str, Any]], record: Any) -> None:
    """A slot's state and context moved by one log record (as ``RotatingLog`` follows them)."""
    if not isinstance(record, dict):
        return
    kind = record.get("kind")
    try:
        if kind == "header":
            for name, spec in record["slots"].items():
                slots[name] = {"state": dict(spec["state"]), "context": dict(spec.get("context") or {})}
            return
        if kind == "snapshot":
            context = dict(record.get("context") or {})
            slots[record["slot"]] = {"state": dict(record["state"]), "context": context}
            return
        spec = slots.get(record.get("slot"))  # type: ignore[arg-type]
        if spec is None:
            return
        if kind == "context":
            spec["context"].update(record["context"])
        elif kind == "patch":
            apply_delta(spec["state"], record["delta"], in_place=True)
        elif kind in ("step", "call"):
            if kind == "step" and record.get("context"):
                spec["context"].update(record["context"])
            apply_delta(spec["state"], record["outcome"]["delta"], in_place=True)
    except (KeyError, TypeError, AttributeError, ValueError):
        pass  # the reader counts it unreadable


def _shadow_state(shadow: Shadow | None) -> str:
    if shadow is None:
        return "not started"
    return "running" if shadow.dead is None else "dead"


def _is_step(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") in ("step", "call")


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the checker's process -----------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    """``python -m shadowdiff.live.checker FD``: FD is this end of the channel to the sidecar."""
    die_with(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sidecar takes Ctrl-C and stops us
    conn = Connection(int(argv[0]))
    try:
        options, start = conn.recv()
    except (EOFError, OSError):
        return 1
    log = RemoteLog(conn)

    def publish(snapshot: dict[str, Any], findings: list[dict[str, Any]]) -> None:
        with contextlib.suppress(OSError):
            conn.send(("snapshot", snapshot, findings))

    log.refresh()
    while not log.files and not log.gone:
        log.wait(0.1)
    if log.gone:
        return 1
    Checker(options, log, publish, Position(*start)).run(lambda: log.stopping)
    with contextlib.suppress(OSError):
        conn.send(("done",))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by the sidecar
    sys.exit(main(sys.argv[1:]))
