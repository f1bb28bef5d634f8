"""The sidecar: receives a live tap's records, keeps them on disk, and checks them against the shadow.

Three threads with one job each, so none of them can hold up the others:

- the *receiver* (one thread per tap connection) validates each record and appends it to the recorded
  log (``RotatingLog``): rotating msgpack files in the spine's recorded-outcome format, each opening
  with a header that holds every slot's state at that point, so any file start is a resync point;
- the *checker* reads the log back from disk and feeds it to the engine's recorded-outcome path
  (``Replay`` with ``authoritative=None``, lockstep): if the shadow falls behind, the lag is bytes on
  disk, never memory; past ``max_lag_bytes`` it jumps to a fresh file start and counts what it skipped;
- the *HTTP* server answers ``/api/status`` (the bot's ``state_machine_shadow`` block and our own
  coverage, clusters, restarts, latency), ``/metrics`` (Prometheus text) and ``/healthz`` from a
  snapshot the checker publishes, so a status request never waits on the shadow.

Tap framing and hello: ``shadowdiff/tap.py``. Safety: only loopback TCP addresses and Unix sockets
(created 0600 in a 0700 directory) are accepted; a TCP listener needs a secret token that every tap's
hello must carry (compared in constant time; a tap without it is refused and counted); recorded logs and
findings are 0600 in 0700 directories; the HTTP face answers only loopback ``Host`` headers. A malformed
or oversized frame from a tap is counted and logged, never fatal.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hmac
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import attrs
import msgpack
from prometheus_client import CollectorRegistry, Histogram

from shadowdiff import __version__
from shadowdiff.core.classify import Clusters
from shadowdiff.core.diff import Rules
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.core.reducer import ForwardingShadow, Request, Result, Shadow
from shadowdiff.core.triage import Triage
from shadowdiff.live.http import Metrics, handler
from shadowdiff.live.tap import parse_address, recv_frame, send_frame
from shadowdiff.model.errors import ShadowdiffError, UsageError
from shadowdiff.model.records import Gap, Record, Snapshot
from shadowdiff.runtime.corpus import RecordReader, context_start, slot_context
from shadowdiff.runtime.private import open_private, private_dir
from shadowdiff.runtime.recordlog import RotatingLog
from shadowdiff.wire.codec import dumps_json, make_unpacker, packb
from shadowdiff.wire.format import TAP_PROTOCOL

RECORD_KINDS = frozenset({"snapshot", "context", "step", "call", "patch", "gap", "meta"})
BOT_KEYS = (
    "enabled", "executable_available", "transition_checks", "invariant_checks", "total_divergences",
    "transition_divergences", "invariant_divergences", "shadow_failures", "last_divergence_kind",
    "last_divergence_event", "last_shadow_error",
)  # fmt: skip
MAX_STATUS_SLOTS = 256  # /api/status lists at most this many slots (a tap naming thousands is the alarm)
SLOT_COLUMNS = (("snapshot", "snapshots"), ("patch", "patches"), ("step", "steps"), ("call", "calls"))
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@attrs.frozen
class SidecarOptions:
    listen: str
    shadow: Callable[[], Shadow]
    shadow_name: str = "shadow"
    record_dir: Path = Path("shadowdiff-live")
    http: str | None = None
    findings: Path | None = None
    rules: Rules = attrs.field(factory=Rules)
    max_lag_bytes: int = 256 << 20
    rotate_bytes: int = 64 << 20
    rotate_seconds: float = 3600.0
    max_frame_bytes: int = 16 << 20
    window: int = 256
    drain_seconds: float = 10.0
    synthetic: bool = False
    # (key, name) pairs from the bot_runtime.json the bot starts from (tap.runtime_slot_names): sent to
    # the tap in the hello answer, so it names the slots it meets from then on as the file does
    slot_names: tuple[Any, ...] = ()
    known: Triage | None = None  # a triage file: what it covers is counted apart, never a finding
    token: bytes | None = None  # required for a TCP listener; every tap's hello must carry it
    hello_seconds: float = 5.0  # a connection that says nothing for this long is dropped


def check_listen(address: str) -> tuple[str, Any]:
    """A listen address the sidecar may bind (loopback TCP or a Unix socket), or UsageError."""
    try:
        return parse_address(address)
    except ValueError as exc:
        raise UsageError(str(exc), address) from None


def check_http(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise UsageError(f"HTTP must listen on a loopback HOST:PORT, not {address!r}")
    return host, int(port)


# -- a shadow that times its answers -------------------------------------------------------------------
class TimedShadow(ForwardingShadow):
    """Forwards the shadow interface to the real shadow (its liveness, restarts and sessions included)
    and observes, per request, the time from submit to answer."""

    def __init__(self, inner: Shadow, histogram: Histogram, recent: collections.deque[float]) -> None:
        super().__init__(inner)
        self._sent: dict[int, float] = {}
        self._histogram = histogram
        self._recent = recent

    def submit(self, request: Request) -> int:
        ticket = self.inner.submit(request)
        self._sent[ticket] = time.perf_counter()
        return ticket

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        got = self.inner.poll(wait)
        now = time.perf_counter()
        for ticket, _ in got:
            sent = self._sent.pop(ticket, None)
            if sent is not None:
                self._histogram.observe(now - sent)
                self._recent.append(now - sent)
        return got


# -- the sidecar ---------------------------------------------------------------------------------------
@attrs.define
class _Totals:
    """What earlier checker runs counted (the checker restarts with a fresh shadow if one gives up)."""

    fed: int = 0
    checked: int = 0
    calls_checked: int = 0
    unchecked: int = 0
    failed: int = 0
    restarts: int = 0
    gave_up: int = 0  # shadows that died for good (too many restarts in a row) and were replaced


class Sidecar:
    """Start with ``start()``; ``status()`` any time; ``stop()`` drains within a bound and cleans up."""

    def __init__(self, options: SidecarOptions) -> None:
        self.options = options
        self.family, self.where = check_listen(options.listen)
        if self.family == "tcp" and not options.token:
            raise UsageError(
                "a TCP listener needs a secret: --token-file FILE (0600; taps read it from "
                "SHADOWDIFF_TAP_TOKEN_FILE); any local process could feed records otherwise",
                options.listen,
            )
        if options.http:
            check_http(options.http)
        self.started = time.time()
        self.instance = uuid.uuid4().hex  # this process's identity in every status: the gate's provenance
        self.log = RotatingLog(
            options.record_dir, options.rotate_bytes, options.rotate_seconds, options.synthetic
        )
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "shadowdiff_sidecar_shadow_latency_seconds",
            "Time from sending a request to the shadow to its answer (queueing included)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(Metrics(self.status))
        self.recent: collections.deque[float] = collections.deque(maxlen=20_000)
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self._known_before: collections.Counter[str] = collections.Counter()
        self.divergences_by: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures_by: collections.Counter[str] = collections.Counter()
        self.bot: dict[str, Any] = {key: 0 for key in BOT_KEYS}
        self.bot.update(enabled=True, executable_available=False, last_divergence_kind=None,
                        last_divergence_event=None, last_shadow_error=None)  # fmt: skip
        self.clusters = Clusters()
        self.slot_counts: dict[str, collections.Counter[str]] = {}  # slot -> records received, by kind
        self._last_step: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._stop_receiving = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self._http: ThreadingHTTPServer | None = None
        self.http_url: str | None = None
        self._findings: IO[str] | None = None
        self._shadow: TimedShadow | None = None
        self._replay: Replay | None = None
        self._totals = _Totals()
        self._published: dict[str, Any] = {}
        self._reading = (0, 0)
        self._consumed_bytes = 0
        self._checker_done = threading.Event()
        self._next_shadow_attempt = 0.0

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.options.findings is not None:
            self._findings = open_private(self.options.findings, "a")
        self._server = self._bind()
        self._new_checker(first=True)
        if self.options.http:
            host, port = check_http(self.options.http)
            self._http = ThreadingHTTPServer((host, port), handler(self.status, self.registry))
            self._http.daemon_threads = True
            self.http_url = f"http://{host}:{self._http.server_address[1]}"
            self._spawn(self._http.serve_forever, "http")
        self._spawn(self._accept_loop, "accept")
        self._spawn(self._check_loop, "checker")
        self._publish()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"sidecar-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _bind(self) -> socket.socket:
        if self.family == "unix":
            path = Path(self.where)
            _private_socket_dir(path.parent)
            if path.exists():
                if not stat.S_ISSOCK(path.stat().st_mode):
                    raise UsageError("exists and is not a socket", str(path))
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(str(path))
                except OSError:
                    path.unlink()  # a stale socket left by a sidecar that died
                else:
                    raise UsageError("another sidecar is listening here", str(path))
                finally:
                    probe.close()
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                server.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
        else:
            server = socket.socket(
                socket.AF_INET6 if ":" in self.where[0] else socket.AF_INET, socket.SOCK_STREAM
            )
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(self.where)
        server.listen(16)
        server.settimeout(0.2)
        return server

    @property
    def address(self) -> str:
        if self.family == "unix":
            return f"unix:{self.where}"
        assert self._server is not None
        return f"tcp:{self.where[0]}:{self._server.getsockname()[1]}"

    def stop(self) -> None:
        """Stop taking records, check what is on disk within ``drain_seconds``, flush, stop the shadow."""
        self._stop_receiving.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
            if self.family == "unix":
                with contextlib.suppress(OSError):
                    Path(self.where).unlink()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.log.close()
        self._stop.set()
        self._checker_done.wait(self.options.drain_seconds + 1.0)
        if self._shadow is not None:
            self._shadow.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._findings is not None:
            self._findings.close()
            self._findings = None
        self._publish()

    # -- receiving -----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop_receiving.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(functools.partial(self._serve_tap, conn), "tap")

    def _serve_tap(self, conn: socket.socket) -> None:
        conn.settimeout(self.options.hello_seconds)  # a silent connection cannot hold a thread forever
        self._connections.add(conn)
        with self.lock:
            self.counts["tap_connections"] += 1
        try:
            hello = msgpack.unpackb(recv_frame(conn, 1 << 16) or b"\xc0", raw=False)
            if (not isinstance(hello, dict) or hello.get("kind") != "hello"
                    or hello.get("protocol") != TAP_PROTOCOL):  # fmt: skip
                with self.lock:
                    self.counts["malformed"] += 1
                return
            if not self._admitted(hello):
                with self.lock:
                    self.counts["refused"] += 1
                with contextlib.suppress(OSError):
                    send_frame(conn, packb({"ok": False, "error": "refused: no valid token"}))
                return
            conn.settimeout(None)
            answer: dict[str, Any] = {"ok": True, "snapshots": True}
            if self.options.slot_names:
                answer["slot_names"] = [list(pair) for pair in self.options.slot_names]
            send_frame(conn, packb(answer))
            while not self._stop_receiving.is_set():
                try:
                    frame = recv_frame(conn, self.options.max_frame_bytes)
                except ValueError:
                    with self.lock:
                        self.counts["oversized"] += 1
                    return  # the tap reconnects and sends snapshots: nothing is assumed
                if frame is None:
                    return
                self._receive(frame)
        except (OSError, ValueError, msgpack.UnpackException, msgpack.ExtraData):
            with self.lock:
                self.counts["malformed"] += 1
        finally:
            self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _admitted(self, hello: Mapping[str, Any]) -> bool:
        expected = self.options.token
        if expected is None:
            return True
        token = hello.get("token")
        if isinstance(token, str):
            token = token.encode("utf-8", "surrogateescape")
        if not isinstance(token, bytes):
            token = b""
        return hmac.compare_digest(token, expected)

    def _receive(self, frame: bytes) -> None:
        unpacker = make_unpacker()
        unpacker.feed(frame)
        good: list[tuple[dict[str, Any], bytes]] = []
        counts: collections.Counter[str] = collections.Counter()
        by_slot: collections.defaultdict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        start = 0
        while True:
            try:
                record = unpacker.unpack()
            except msgpack.OutOfData:
                if start < len(frame):
                    counts["malformed"] += 1
                break
            except (ValueError, TypeError, msgpack.UnpackException, msgpack.exceptions.StackError):
                counts["malformed"] += 1  # TypeError: an unhashable map key (a list or map as a key)
                break
            end = unpacker.tell()
            raw = frame[start:end]
            start = end
            why = _invalid(record, self.log.knows)
            if why:
                counts["malformed"] += 1
                continue
            kind = record["kind"]
            if kind == "gap":
                counts["dropped_by_tap"] += int(record.get("dropped", 0))
            counts[f"records_{kind}"] += 1
            if kind in ("snapshot", "patch", "step", "call"):
                by_slot[record["slot"]][kind] += 1
            good.append((record, raw))
            if kind == "snapshot":  # later records of this frame may name the slot
                self._append(good)
                good = []
        if good:
            self._append(good)
        with self.lock:
            self.counts.update(counts)
            for name, kinds in by_slot.items():
                self.slot_counts.setdefault(name, collections.Counter()).update(kinds)

    def _append(self, records: list[tuple[dict[str, Any], bytes]]) -> None:
        """Count the steps and calls as received before the checker can see them (so the coverage
        figures never count a step the received count lacks), then write them."""
        steps = sum(1 for record, _ in records if record["kind"] in ("step", "call"))
        with self.lock:
            self.counts["received"] += steps
        self.log.append(records)

    # -- checking ------------------------------------------------------------------------------------
    def _new_checker(self, first: bool = False) -> bool:
        if self._replay is not None:
            result = self._replay.result
            done = self._replay.coverage()  # drained: nothing in flight
            self._totals.fed += done.fed
            self._totals.checked += done.checked
            self._totals.unchecked += done.unchecked + done.in_flight
            self._totals.failed += done.failed
            self._totals.calls_checked += result.shadow_checks["call"]
            self._known_before.update(
                {k: result.counts[k] for k in ("known_divergences", "known_failures") if result.counts[k]}
            )
            if self._shadow is not None:
                self._totals.restarts += self._shadow.restarts + 1
                self._totals.gave_up += self._shadow.dead is not None
                self._shadow.close()
        self._replay = None
        try:
            inner = self.options.shadow()
        except ShadowdiffError as exc:
            self.bot["executable_available"] = False
            self.bot["last_shadow_error"] = f"setup: {exc}"
            self._shadow = None
            return False
        self._shadow = TimedShadow(inner, self.latency, self.recent)
        self.bot["executable_available"] = True
        options = ReplayOptions(mode="lockstep", rules=self.options.rules, window=self.options.window,
                                verify_final=False, known=self.options.known)  # fmt: skip
        self._replay = Replay(self._shadow, None, options, on_finding=self._finding)
        return True

    def _check_loop(self) -> None:
        try:
            self._check_files()
        except Exception as exc:  # pragma: no cover - reported, never silent
            with self.lock:
                self.counts["checker_errors"] += 1
            self.bot["last_shadow_error"] = f"checker stopped: {type(exc).__name__}: {exc}"
        finally:
            self._publish()
            self._checker_done.set()

    def _check_files(self) -> None:
        index, offset = 0, 0
        reader = RecordReader(str(self.log.files[0].path))
        unpacker, whole_at = make_unpacker(), 0
        stream = self.log.files[0].path.open("rb")
        records_here = 0
        drain_until: float | None = None
        last_publish = 0.0
        try:
            while True:
                if self._stop.is_set() and drain_until is None:
                    drain_until = time.monotonic() + self.options.drain_seconds
                if drain_until is not None and time.monotonic() > drain_until:
                    return
                current = self.log.files[index]
                size = current.size
                progressed = False
                if offset < size:
                    stream.seek(offset)
                    chunk = stream.read(min(size - offset, 1 << 16))
                    offset += len(chunk)
                    # tell() counts the bytes of a record cut short too: measure from the last whole one
                    base, told = self._consumed_bytes, whole_at
                    unpacker.feed(chunk)
                    for value in unpacker:
                        records_here += (
                            value.get("kind") in ("step", "call") if isinstance(value, dict) else 0
                        )
                        whole_at = unpacker.tell()
                        self._consumed_bytes = base + whole_at - told
                        self._check_value(reader, value, current.path)
                    progressed = True
                elif current.closed and index + 1 < len(self.log.files):
                    stream.close()
                    index, offset, records_here = index + 1, 0, 0
                    stream = self.log.files[index].path.open("rb")
                    reader = RecordReader(str(self.log.files[index].path))
                    unpacker, whole_at = make_unpacker(), 0
                    progressed = True
                elif current.closed and self._stop.is_set():
                    self._drain()
                    return
                # too far behind: jump to a fresh file start (its header resyncs every slot)
                lag = self.log.total_bytes - self._consumed_bytes
                if lag > self.options.max_lag_bytes and drain_until is None:
                    target = self.log.rotate()  # closes every earlier file: their counts are final
                    skipped = current.records - records_here
                    for between in self.log.files[index + 1 : target]:
                        skipped += between.records
                        self._consumed_bytes += between.size
                    self._consumed_bytes += current.size - whole_at  # a record cut short counts too
                    with self.lock:
                        self.counts["skipped"] += max(0, skipped)
                    self._drain()
                    stream.close()
                    index, offset, records_here = target, 0, 0
                    stream = self.log.files[index].path.open("rb")
                    reader = RecordReader(str(self.log.files[index].path))
                    unpacker, whole_at = make_unpacker(), 0
                self._reading = (index, offset)
                if (self._shadow is None or self._shadow.dead) and now_ok(self):
                    self._replace_shadow()
                now = time.monotonic()
                if not progressed:
                    self._drain()
                    self._publish()
                    last_publish = now
                    with self.log.lock:
                        self.log.changed.wait(0.05)
                elif now - last_publish > 0.1:
                    self._publish()
                    last_publish = now
        finally:
            stream.close()

    def _check_value(self, reader: RecordReader, value: Any, path: Path) -> None:
        replay = self._replay
        try:  # turning a record into items never warns: no warnings filter per record
            items = list(reader.item(value, str(path)))
        except ShadowdiffError:
            with self.lock:
                self.counts["unreadable"] += 1
                self.counts["unreadable_steps"] += _is_step(value)
            return
        for item in items:
            if replay is None:
                if isinstance(item, Record):
                    with self.lock:
                        self.counts["unchecked_no_shadow"] += 1
                continue
            if isinstance(item, Gap):
                continue  # counted when received
            try:
                if isinstance(item, Snapshot):
                    self._drain()  # the engine must not apply older in-flight deltas to the new mirror
                replay.feed(item)
            except ShadowdiffError as exc:
                with self.lock:
                    self.counts["unreadable"] += 1
                    self.counts["unreadable_steps"] += isinstance(item, Record)
                self.bot["last_shadow_error"] = f"record skipped: {exc}"

    def _drain(self) -> None:
        if self._replay is not None:  # the window must be empty before a slot is reopened
            self._replay.drain()

    def _replace_shadow(self) -> None:
        """The shadow gave up (too many restarts in a row), or never started: a fresh one, resynced."""
        self._next_shadow_attempt = time.monotonic() + 2.0
        self._drain()
        self._new_checker()
        if self._replay is not None:
            # the log's mirrors are the resync point: replay every slot from a new file's header
            start = context_start()  # the domain's parameters at their defaults
            for name, spec in list(self.log.slots.items()):
                self._replay.feed(Snapshot(name, dict(spec["state"]), slot_context(spec["context"], start)))

    def _finding(self, record: dict[str, Any]) -> None:
        kind = str(record.get("kind"))
        event_type = str(record.get("event_type"))
        with self.lock:
            if kind in ("crash", "timeout", "protocol", "error"):
                self.failures_by[kind] += 1
                self.bot["shadow_failures"] += 1
                self.bot["last_shadow_error"] = f"{kind}: {record.get('message')}"
            else:
                self.divergences_by[(kind, event_type)] += 1
                step = (str(record.get("slot")), int(record.get("step") or 0))
                bot_kind = "invariant" if kind == "invariant" else "transition"
                if kind == "invariant":
                    self.bot["invariant_divergences"] += 1
                    self.bot["total_divergences"] += 1
                elif self._last_step != step or self.bot["last_divergence_kind"] != "transition":
                    self.bot["transition_divergences"] += 1
                    self.bot["total_divergences"] += 1
                self._last_step = step
                self.bot["last_divergence_kind"] = bot_kind
                self.bot["last_divergence_event"] = event_type
            step_of = record.get("step")
            self.clusters.add(str(record.get("signature")), kind, event_type,
                              step_of if isinstance(step_of, int) else None, time.time())  # fmt: skip
        if self._findings is not None:
            try:
                self._findings.write(dumps_json(record) + "\n")
                self._findings.flush()
            except OSError:  # disk full: counted, and the checker goes on
                with self.lock:
                    self.counts["findings_unwritten"] += 1

    # -- status --------------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Compute the live figures. Called by the checker (the one thread that moves the engine, so the
        figures agree with each other), and by ``status`` only once no checker runs."""
        replay, shadow = self._replay, self._shadow
        totals = self._totals
        now = replay.coverage() if replay is not None else None
        fed = totals.fed + (now.fed if now else 0)
        checked = totals.checked + (now.checked if now else 0)
        failed = totals.failed + (now.failed if now else 0)
        inflight = now.in_flight if now else 0
        call_checks = totals.calls_checked + (replay.result.shadow_checks["call"] if replay else 0)
        with self.lock:
            counts = self.counts
            self.bot["transition_checks"] = checked - call_checks
            self.bot["invariant_checks"] = checked - call_checks
            self.bot["executable_available"] = shadow is not None and not shadow.dead
            # every step or call received is, at any moment, exactly one of: checked, waiting (on disk,
            # or in flight to the shadow), skipped (the checker jumped ahead), or unchecked, by reason;
            # ``status`` adds what was received (or not written) since, so a busy checker shows as lag
            unchecked_by = {
                "shadow_failed": failed,  # the shadow failed on the step (each one a finding)
                "not_compared": totals.unchecked + (now.unchecked if now else 0),  # shadow dead, slot
                # diverged (free mode), or refused its state
                "no_shadow": counts["unchecked_no_shadow"],  # no shadow running (it did not start)
                "unreadable": counts["unreadable_steps"],
            }
            # the received steps the checker has taken from disk, less those still in flight
            taken = fed + counts["skipped"] + unchecked_by["no_shadow"] + unchecked_by["unreadable"]
            self._published = {
                "taken": taken - inflight,
                "checked": checked,
                "calls_checked": call_checks,
                "restarts": totals.restarts + (shadow.restarts if shadow is not None else 0),
                "gave_up": totals.gave_up + (shadow is not None and shadow.dead is not None),
                "state": _shadow_state(shadow),
                "dead": shadow.dead if shadow is not None else None,
                "skipped": counts["skipped"],
                "unchecked_by": unchecked_by,
            }

    def status(self) -> dict[str, Any]:
        if self._checker_done.is_set() or not self._threads:
            self._publish()
        unrecorded = self.log.unrecorded  # before ``received``: a step is received before it is written
        total_bytes = self.log.total_bytes
        with self.lock:
            pub = dict(self._published)
            received = self.counts["received"]
            bot = dict(self.bot)
            counts = dict(self.counts)
            clusters = self.clusters.live()
            recent = sorted(_copy(self.recent))
            slots = {
                name: {plural: kinds[kind] for kind, plural in SLOT_COLUMNS}
                for name, kinds in sorted(self.slot_counts.items())[:MAX_STATUS_SLOTS]
            }
            slot_count = len(self.slot_counts)
        unchecked_by = {**pub.get("unchecked_by", {}), "unrecorded": unrecorded}  # disk full
        unchecked = sum(unchecked_by.values())
        return {
            "mode": "sidecar",
            "version": __version__,
            "top_phase": None,
            "provenance": {
                "source": "shadowdiff sidecar",
                "synthetic": self.options.synthetic,
                "instance": self.instance,
                "pid": os.getpid(),
                "started": round(self.started, 3),
            },
            "state_machine_shadow": bot,
            "coverage": {
                # received == checked + lag_records + skipped_by_sidecar + unchecked, always
                "received": received,
                "checked": pub.get("checked", 0),
                "calls_checked": pub.get("calls_checked", 0),
                "lag_records": received - unrecorded - pub.get("taken", 0),
                "lag_bytes": max(0, total_bytes - self._consumed_bytes),
                "dropped_by_tap": counts.get("dropped_by_tap", 0),
                "skipped_by_sidecar": pub.get("skipped", 0),
                "unchecked": unchecked,
                "unchecked_by": unchecked_by,
                "unrecorded": unrecorded,  # could not be written (disk full): never checked
                "malformed": counts.get("malformed", 0)
                + counts.get("oversized", 0)
                + counts.get("unreadable", 0),
            },
            "divergences_by_kind": _by_first(self.divergences_by),
            "failures_by_kind": dict(self.failures_by),
            "clusters": clusters,
            "known": self._known_counts(),
            "shadow": {
                "command": self.options.shadow_name,
                "state": pub.get("state", "not started"),  # running, dead (gave up) or not started
                "dead": pub.get("dead"),  # why it gave up, while it stays so (a new one is tried)
                "restarts": pub.get("restarts", 0),
                "gave_up": pub.get("gave_up", 0),  # shadows that died for good and were replaced
                "latency_ms": {"p50": _quantile(recent, 0.5) * 1000, "p99": _quantile(recent, 0.99) * 1000},
            },
            "taps": {
                "connected": len(self._connections),
                "connections": counts.get("tap_connections", 0),
                "refused": counts.get("refused", 0),  # no valid token: nothing they sent was kept
            },
            # the slots the taps named, with what each received: one snapshot per slot and patches only
            # where the bot changed a state outside the reducer; a slot per call, or one slot with
            # patches on every other call, is a tap attributing calls to the wrong slot
            "slots": {"count": slot_count, "listed": len(slots), "by_slot": slots},
            "record": {
                "dir": str(self.options.record_dir),
                "files": len(self.log.files),
                "bytes": self.log.total_bytes,
                "unrecorded": self.log.unrecorded,
                "write_errors": self.log.write_errors,
                "last_write_error": self.log.last_write_error,
                "findings_unwritten": counts.get("findings_unwritten", 0),
            },
            "uptime_s": round(time.time() - self.started, 3),
        }

    def _known_counts(self) -> dict[str, int]:
        """Divergences and failures the triage file (--known) covered: counted, not findings."""
        replay = self._replay
        now = replay.result.counts if replay is not None else collections.Counter()
        return {
            "entries": len(self.options.known) if self.options.known is not None else 0,
            "divergences": self._known_before["known_divergences"] + now["known_divergences"],
            "failures": self._known_before["known_failures"] + now["known_failures"],
        }

    def wait_caught_up(self, timeout: float) -> bool:
        """Block until everything received was checked (or skipped); for tests and the demo."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            cov = self.status()["coverage"]
            quiet = quiet + 1 if cov["lag_records"] == 0 else 0
            if quiet >= 3:  # nothing waiting over three polls: the tap is quiet and all is checked
                return True
            time.sleep(0.05)
        return False


def _private_socket_dir(directory: Path) -> None:
    """A Unix socket lives in a 0700 directory of ours: created so if missing, refused otherwise."""
    if not directory.exists():
        private_dir(directory)
        return
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UsageError(
            f"the socket's directory must be ours and 0700, not {stat.S_IMODE(info.st_mode):04o} "
            f"(chmod 700 {directory}, or use a new directory: it is created 0700)",
            str(directory),
        )


def _shadow_state(shadow: Shadow | None) -> str:
    if shadow is None:
        return "not started"
    return "running" if shadow.dead is None else "dead"


def _is_step(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") in ("step", "call")


def now_ok(sidecar: Sidecar) -> bool:
    return time.monotonic() >= sidecar._next_shadow_attempt


def _invalid(record: Any, knows: Callable[[str], bool]) -> str | None:
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS:
        return "not a record"
    kind = record["kind"]
    if kind in ("gap", "meta"):
        return None
    slot = record.get("slot")
    if not isinstance(slot, str):
        return "no slot"
    if record.get("context") is not None and not isinstance(record.get("context"), dict):
        return "context is not a map"
    if kind == "snapshot":
        return None if isinstance(record.get("state"), dict) else "snapshot without a state"
    if not knows(slot):
        return "a slot never opened"
    if kind == "context":
        return None if isinstance(record.get("context"), dict) else "context record without a context"
    if kind == "patch":
        return None if _delta_ok(record.get("delta")) else "patch without a delta"
    if kind in ("step", "call"):
        outcome = record.get("outcome")
        if not isinstance(outcome, dict) or not _delta_ok(outcome.get("delta")):
            return "no recorded outcome"
        if kind == "step" and not isinstance(record.get("event"), dict):
            return "step without an event"
    return None


def _delta_ok(delta: Any) -> bool:
    """PROTOCOL.md's delta: a map of an optional ``set`` map and an optional ``append`` map of lists
    (anything else would break the log's state mirror, which applies every delta as it is received)."""
    if not isinstance(delta, dict):
        return False
    sets, appends = delta.get("set", {}), delta.get("append", {})
    if not isinstance(sets, dict) or not isinstance(appends, dict):
        return False
    return all(isinstance(items, list) for items in appends.values())


def _copy(values: collections.deque[float]) -> list[float]:
    for _ in range(5):
        try:
            return list(values)
        except RuntimeError:  # appended to while being copied
            continue
    return []


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _by_first(counter: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (kind, event_type), n in sorted(counter.items()):
        out.setdefault(kind, {})[event_type] = n
    return out


__all__ = ["RotatingLog", "Sidecar", "SidecarOptions", "check_http", "check_listen"]
