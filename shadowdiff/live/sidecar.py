"""The sidecar: receives a live tap's records, keeps them on disk, and checks them against the shadow.

Two halves, by default in two processes, so a flat-out tap is received and recorded at full speed while
the checker works through the lag on disk (``one_process`` / ``shadowdiff sidecar --one-process`` runs
the checker as a thread of this process instead, the shape before issue 16):

- this process *receives and records*: one thread per tap connection validates each record and appends
  it to the recorded log (``RotatingLog``): rotating msgpack files in the spine's recorded-outcome
  format, each opening with a header that holds every slot's state at that point, so any file start is
  a resync point; and it serves HTTP: ``/api/status`` (the bot's ``state_machine_shadow`` block and our
  own coverage, clusters, restarts, latency), ``/metrics`` (Prometheus text) and ``/healthz``;
- the *checker* (``shadowdiff.live.checker``, a child process) reads the log back from disk and feeds it
  to the engine against the shadow; it publishes drained snapshots (counts, findings, its position) over
  a socket pair. A socket pair rather than a status file: its end of file tells either side at once that
  the other is gone, it orders findings before the counts that include them, and it leaves nothing on
  disk to go stale or be read by anyone else. The status combines what this process counted (received,
  bytes, taps) with the last snapshot, so the coverage identity holds at every status:
  ``received = checked + lag + skipped + unchecked``. A checker that dies is started again (counted,
  ``checker.restarts``), from the last snapshot's position: what arrived meanwhile waits on disk.

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
import pickle
import select
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import attrs
import msgpack
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from shadowdiff import __version__
from shadowdiff.core.classify import Clusters
from shadowdiff.core.diff import Rules
from shadowdiff.core.reducer import Shadow
from shadowdiff.core.triage import Triage
from shadowdiff.live.checker import (
    ADDITIVE,
    LATENCY_BUCKETS,
    Checker,
    CheckerOptions,
    LocalLog,
    Position,
    TimedShadow,
)
from shadowdiff.live.http import Metrics, handler
from shadowdiff.live.tap import parse_address, recv_frame, send_frame
from shadowdiff.model.errors import UsageError
from shadowdiff.runtime.corpus import context_start
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
ONE_PROCESS_DEFAULT = False
"""Whether the checker runs as a thread of the sidecar by default. Measured with bench/sidecar_rate.py
on this project's shared two cores (ratios in one run, docs/robustness.md): two processes check faster,
as the receiving no longer shares the checker's interpreter."""
RESTART_SECONDS = (0.2, 10.0)  # a checker that died is started again after this, doubling up to that


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
    # the checker as a thread of this process (else a process of its own: ``shadow`` must pickle)
    one_process: bool = ONE_PROCESS_DEFAULT

    def checker(self) -> CheckerOptions:
        return CheckerOptions(shadow=self.shadow, rules=self.rules, known=self.known, window=self.window,
                              max_lag_bytes=self.max_lag_bytes, drain_seconds=self.drain_seconds,
                              start=context_start())  # fmt: skip


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


class _LatencyMetric(Collector):
    """The shadow's answer times as a Prometheus histogram, from the checker's snapshots."""

    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self.figures = figures

    def collect(self) -> Any:
        latency = self.figures()
        counts = latency.get("buckets") or [0] * (len(LATENCY_BUCKETS) + 1)
        running, buckets = 0, []
        for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            buckets.append((bound, running))
        yield HistogramMetricFamily(
            "shadowdiff_sidecar_shadow_latency_seconds",
            "Time from sending a request to the shadow to its answer (queueing included)",
            buckets=buckets,
            sum_value=latency.get("sum", 0.0),
        )


class _Channel:
    """This side of a checker process's socket pair; sends from several threads, one at a time."""

    def __init__(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        self.conn, self.proc = conn, proc
        self.lock = threading.Lock()
        self.alive = True
        self.sent_closed = 0  # the leading files already sent as closed (not sent again)

    def writable(self, timeout: float) -> bool:
        """Room in the socket for a message (a stopped checker must not block a sender for ever)."""
        try:
            return bool(select.select([], [self.conn.fileno()], [], timeout)[1])
        except (OSError, ValueError):
            self.alive = False
            return False

    def send(self, message: tuple[Any, ...], wait: float = 1.0) -> bool:
        """Sent (False: no room within ``wait``, or the checker is gone)."""
        with self.lock:
            if not self.writable(wait):
                return False
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                self.alive = False
                return False
            return True


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
        self.registry.register(_LatencyMetric(lambda: self._checked_figures()[0]["latency"]))
        self.registry.register(Metrics(self.status))
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
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
        # the checker: its last snapshot, what the checkers before it counted, where a new one starts
        self._snapshot: dict[str, Any] | None = None
        self._base: dict[str, Any] = {}
        self._errors_seen = 0
        self._resume = Position()
        self._checker: dict[str, Any] = {"mode": "thread" if options.one_process else "process", "pid": None,
                         "state": "not started", "restarts": 0, "last_exit": None}  # fmt: skip
        self._checker_done = threading.Event()
        self._ready = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        checker = self.options.checker()
        if not self.options.one_process:
            try:
                pickle.dumps(checker)
            except Exception as exc:
                raise UsageError(f"the checker's process needs options that pickle ({exc}); run it as a "
                                 "thread with one_process=True") from None  # fmt: skip
        if self.options.findings is not None:
            self._findings = open_private(self.options.findings, "a")
        self._server = self._bind()
        if self.options.http:
            host, port = check_http(self.options.http)
            self._http = ThreadingHTTPServer((host, port), handler(self.status, self.registry))
            self._http.daemon_threads = True
            self.http_url = f"http://{host}:{self._http.server_address[1]}"
            self._spawn(self._http.serve_forever, "http")
        if self.options.one_process:
            self._spawn(functools.partial(self._check_in_thread, checker), "checker")
        else:
            self._spawn(functools.partial(self._supervise, checker), "supervisor")
        self._ready.wait(30.0)  # the checker's first snapshot: its shadow is up (or it said why not)
        self._spawn(self._accept_loop, "accept")

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
        if self._threads:
            self._checker_done.wait(self.options.drain_seconds + 5.0)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._findings is not None:
            self._findings.close()
            self._findings = None

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
    def _check_in_thread(self, options: CheckerOptions) -> None:
        """``one_process``: the checker as a thread of this process, on the log itself."""
        self._checker.update(state="running", pid=os.getpid())
        try:
            Checker(options, LocalLog(self.log), self._take).run(self._stop.is_set)
        finally:
            self._checker["state"] = "stopped"
            self._checker_done.set()
            self._ready.set()

    def _take(self, snapshot: dict[str, Any], findings: list[dict[str, Any]]) -> None:
        """A checker's snapshot: its findings first (the counts include them), then its figures."""
        for finding in findings:
            self._finding(finding)
        count, error = snapshot["error"]
        with self.lock:
            if count > self._errors_seen:
                self.bot["last_shadow_error"] = error
            self._errors_seen = count
            self._snapshot = snapshot
        self._ready.set()

    def _supervise(self, options: CheckerOptions) -> None:
        """The checker's process: started, served, and started again from the last snapshot's position
        if it dies on its own (after a pause that doubles while it keeps dying young)."""
        pause = RESTART_SECONDS[0]
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                code = self._run_checker(options)
                if self._stop.is_set():
                    break
                with self.lock:  # what it counted up to its last snapshot stays counted
                    if self._snapshot is not None:
                        self._base = _fold(self._base, self._snapshot)
                        self._resume = Position(*self._snapshot["position"])
                    self._snapshot, self._errors_seen = None, 0
                    self._checker.update(state="down", pid=None, last_exit=code)
                    self._checker["restarts"] += 1
                    self.bot["last_shadow_error"] = f"the checker's process ended ({_exit(code)}); restarting"
                self._ready.set()
                pause = RESTART_SECONDS[0] if time.monotonic() - began > 10 else pause
                self._stop.wait(pause)
                pause = min(pause * 2, RESTART_SECONDS[1])
        finally:
            self._checker["state"] = "stopped"
            self._checker_done.set()
            self._ready.set()

    def _run_checker(self, options: CheckerOptions) -> int | None:
        """One checker process, from start to end; its exit code."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shadowdiff.live.checker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            theirs.close()
            channel = _Channel(Connection(os.dup(ours.fileno())), proc)
        with self.lock:
            self._checker.update(state="running", pid=proc.pid)
        channel.send((options, attrs.astuple(self._resume)))
        feeder = threading.Thread(target=self._feed, args=(channel,), name="sidecar-feeder", daemon=True)
        feeder.start()
        deadline: float | None = None
        stop_sent = False
        try:
            while True:
                if self._stop.is_set() and deadline is None:
                    deadline = time.monotonic() + self.options.drain_seconds + 2.0
                if deadline is not None and not stop_sent:
                    stop_sent = channel.send(("stop",), wait=0.1)
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    if not channel.conn.poll(0.1):
                        if proc.poll() is not None:
                            break
                        continue
                    message = channel.conn.recv()
                except (EOFError, OSError):
                    break
                if message[0] == "snapshot":
                    self._take(message[1], message[2])
                elif message[0] == "rotate":  # past the lag budget: a new file to jump to
                    index = self.log.rotate()
                    self._send_files(channel)
                    channel.send(("rotated", index))
                elif message[0] == "done":
                    break
        finally:
            channel.alive = False
            feeder.join(1.0)
            with contextlib.suppress(OSError):
                channel.conn.close()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def _feed(self, channel: _Channel) -> None:
        """Tell the checker's process of the log's growth (its files, sizes, closes): a thread of its
        own, so a checker slow to read never holds up a receiver."""
        log, last = self.log, None
        while channel.alive:
            with log.lock:
                log.changed.wait(0.05)
                tail = log.files[-1]
                key = (len(log.files), tail.size, tail.closed, log.total_bytes)
            if key != last and self._send_files(channel):
                last = key
                time.sleep(0.002)  # a few frames per message when the tap is flat out

    def _send_files(self, channel: _Channel) -> bool:
        """The log's files from the first not yet sent closed (False: no room, or the checker is gone:
        the next message says it all again)."""
        with channel.lock:
            if not channel.writable(0.05):
                return False
            with self.log.lock:
                start = channel.sent_closed
                rows = [(str(f.path), f.size, f.records, f.closed) for f in self.log.files[start:]]
                total = self.log.total_bytes
            try:
                channel.conn.send(("files", start, rows, total))
            except (OSError, ValueError):
                channel.alive = False
                return False
            while rows and rows[0][3]:
                rows.pop(0)
                channel.sent_closed += 1
            return True

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
    def _checked_figures(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """What every checker so far counted (the earlier ones' last snapshots and the current one's),
        and the current one's snapshot (None while none runs)."""
        with self.lock:
            snapshot = self._snapshot
            figures = _fold(self._base, snapshot) if snapshot is not None else _fold(self._base, {})
        return figures, snapshot

    def status(self) -> dict[str, Any]:
        unrecorded = self.log.unrecorded  # before ``received``: a step is received before it is written
        total_bytes = self.log.total_bytes
        pub, snapshot = self._checked_figures()  # before ``received``: it took only what was received
        with self.lock:
            received = self.counts["received"]
            bot = dict(self.bot)
            counts = dict(self.counts)
            clusters = self.clusters.live()
            slots = {
                name: {plural: kinds[kind] for kind, plural in SLOT_COLUMNS}
                for name, kinds in sorted(self.slot_counts.items())[:MAX_STATUS_SLOTS]
            }
            slot_count = len(self.slot_counts)
            checker = dict(self._checker)
        current = snapshot or {}
        checked, calls_checked = pub["checked"], pub["calls_checked"]
        bot["transition_checks"] = bot["invariant_checks"] = checked - calls_checked
        bot["executable_available"] = bool(current.get("executable_available", False))
        # every step or call received is, at any moment, exactly one of: checked, waiting (on disk, or
        # in flight to the shadow), skipped (the checker jumped ahead), or unchecked, by reason
        unchecked_by = {**pub["unchecked_by"], "unrecorded": unrecorded}  # disk full
        unchecked = sum(unchecked_by.values())
        consumed = current.get("consumed", self._resume.consumed)
        latency = pub["latency"]
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
                "checked": checked,
                "calls_checked": calls_checked,
                "lag_records": received - unrecorded - pub["taken"],
                "lag_bytes": max(0, total_bytes - consumed),
                "dropped_by_tap": counts.get("dropped_by_tap", 0),
                "skipped_by_sidecar": pub["skipped"],
                "unchecked": unchecked,
                "unchecked_by": unchecked_by,
                "unrecorded": unrecorded,  # could not be written (disk full): never checked
                "malformed": counts.get("malformed", 0) + counts.get("oversized", 0) + pub["unreadable"],
            },
            "divergences_by_kind": _by_first(self.divergences_by),
            "failures_by_kind": dict(self.failures_by),
            "clusters": clusters,
            "known": {
                "entries": len(self.options.known) if self.options.known is not None else 0,
                "divergences": pub["known_divergences"],
                "failures": pub["known_failures"],
            },
            "shadow": {
                "command": self.options.shadow_name,
                "state": current.get("state", "not started"),  # running, dead (gave up) or not started
                "dead": current.get("dead"),  # why it gave up, while it stays so (a new one is tried)
                "restarts": pub["restarts"],
                "gave_up": pub["gave_up"],  # shadows that died for good and were replaced
                "latency_ms": {"p50": latency["p50"] * 1000, "p99": latency["p99"] * 1000},
            },
            # the checking half: a thread of this process (--one-process) or a process of its own, which
            # is started again (restarts) from where it was if it dies
            "checker": checker,
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


def _fold(base: Mapping[str, Any], snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (what earlier checkers counted) plus a snapshot's counts; the quantiles are the
    snapshot's own."""
    out: dict[str, Any] = {}
    for key in ADDITIVE:
        a, b = base.get(key), snapshot.get(key)
        if key == "unchecked_by":
            names = ("shadow_failed", "not_compared", "no_shadow", "unreadable")
            out[key] = {n: (a or {}).get(n, 0) + (b or {}).get(n, 0) for n in names}
        elif key == "latency":
            a, b = a or {}, b or {}
            zero = [0] * (len(LATENCY_BUCKETS) + 1)
            out[key] = {
                "buckets": [
                    x + y for x, y in zip(a.get("buckets", zero), b.get("buckets", zero), strict=True)
                ],
                "sum": a.get("sum", 0.0) + b.get("sum", 0.0),
                "count": a.get("count", 0) + b.get("count", 0),
                "p50": b.get("p50", a.get("p50", 0.0)),
                "p99": b.get("p99", a.get("p99", 0.0)),
            }
        else:
            out[key] = (a or 0) + (b or 0)
    return out


def _exit(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


def _by_first(counter: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (kind, event_type), n in sorted(counter.items()):
        out.setdefault(kind, {})[event_type] = n
    return out


__all__ = [
    "ONE_PROCESS_DEFAULT",
    "RotatingLog",
    "Sidecar",
    "SidecarOptions",
    "TimedShadow",
    "check_http",
    "check_listen",
]
