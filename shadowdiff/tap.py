"""The live tap: inside the bot's process, hand every reducer call to a sidecar without slowing the bot.

Standard library and msgpack only: this module must stay importable in a trading process without
pulling in the engine (no attrs-heavy modules, numpy, hypothesis or click).

    import state_machine
    from shadowdiff import tap
    tap.install(state_machine)   # only with DOGE_CORE_SHADOW=1 and SHADOWDIFF_TAP=unix:/p or tcp:127.0.0.1:N

    python -m shadowdiff.tap [--module doge_core] [--tap unix:/path] SCRIPT [ARGS...]
    python -m shadowdiff.tap --module state_machine -m package.bot [ARGS...]

What happens where:

- On the bot's thread the wrapped ``transition`` / ``apply_order_regime_at_entry`` call the original,
  then append one tuple of *references* (kind, slot hint, sequence number, arguments, result) to a
  bounded deque and return the original's result, always. The upstream values are frozen dataclasses
  of tuples, so handing references to another thread is safe. A full queue drops the call and counts
  it; nothing on this path can raise into the bot or block it. ``check_invariants`` is passed through
  and counted: the tap computes the violations of every post-state itself, on its own thread.
- A daemon thread turns the tuples into the spine's recorded-outcome records (docs/formats.md): a
  ``snapshot`` when a slot is first seen (or after a reconnect: the sidecar asks in its hello answer),
  a ``patch`` when the pre-state is not the slot's previous post-state (the bot changed it outside the
  reducer: txid binding, reseeding), then the ``step`` or ``call`` with its outcome. The delta is found
  by identity against the slot's previous state (an untouched field is the very same object, a tuple
  whose old items are all still at its front was appended to), so the cost of a record does not grow
  with the state's history. Records are msgpack-encoded and sent in length-prefixed batches; drops
  (queue full, no sidecar, send or encoding errors) are counted and sent on as ``gap`` records.

Which slot a call belongs to (the bot calls ``transition`` per slot without naming it):

1. the name set with ``with tap.slot("name"):`` on the calling thread/task (a contextvar), if any;
2. else the slot whose previous post-state *is* the pre-state (the identity chain);
3. else the known slot sharing the most objects with the pre-state by identity (tuple items, and
   float fields not at their default): the bot changed that slot outside the reducer;
4. else a new slot, named ``slot-N`` in order of appearance.

Attribution only names things: whichever slot a pre-state is given to, the records carry it exactly
(a patch from that slot's last state, or a snapshot), so the sidecar always checks the bot's real
pre-state.

Frames on the wire (tap to sidecar): a 4-byte big-endian length, then that many bytes of msgpack
objects back to back. The first frame is ``{"kind": "hello", "protocol": 1, ...}``; the sidecar
answers with one frame ``{"ok": true, "snapshots": bool}``. Every later frame is a batch of records.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import contextvars
import dataclasses
import functools
import importlib
import inspect
import itertools
import os
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

import msgpack

from .identity import IdentityWire

ENV_SWITCH = "DOGE_CORE_SHADOW"
ENV_ADDRESS = "SHADOWDIFF_TAP"
ENV_EXIT_WAIT = "SHADOWDIFF_TAP_EXIT_WAIT"
ENV_TOKEN_FILE = "SHADOWDIFF_TAP_TOKEN_FILE"  # the sidecar's --token-file: its first line is the secret
ENV_TOKEN = "SHADOWDIFF_TAP_TOKEN"  # or the secret itself
TAP_PROTOCOL = 1
FRAME = struct.Struct(">I")
MAX_FRAME = 64 << 20
LOG_FORMAT = "shadowdiff-log"
CALL_FUNCTIONS = ("apply_order_regime_at_entry",)
_MARK = "__shadowdiff_tap__"

_slot_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("shadowdiff_tap_slot", default=None)


@contextlib.contextmanager
def slot(name: str) -> Iterator[None]:
    """Name the slot of every reducer call made inside the block (this thread or task only)."""
    token = _slot_var.set(str(name))
    try:
        yield
    finally:
        _slot_var.reset(token)


# -- addresses -----------------------------------------------------------------------------------------
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def parse_address(text: str) -> tuple[str, Any]:
    """``unix:/path`` or ``tcp:127.0.0.1:PORT`` (loopback only); ValueError naming what is wrong."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError("unix: needs a socket path")
        return "unix", path
    if text.startswith("tcp:"):
        host, sep, port = text[4:].rpartition(":")
        host = host.strip("[]")
        if not sep or not port.isdigit():
            raise ValueError(f"not tcp:HOST:PORT: {text!r}")
        if host not in LOOPBACK:
            raise ValueError(f"only loopback addresses are allowed, not {host!r}")
        return "tcp", (host, int(port))
    raise ValueError(f"address must be unix:/path or tcp:127.0.0.1:PORT, not {text!r}")


def connect(address: str, timeout: float = 1.0) -> socket.socket:
    family, where = parse_address(address)
    sock = socket.socket(socket.AF_UNIX if family == "unix" else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


def tap_token() -> str | None:
    """The secret the hello carries (``SHADOWDIFF_TAP_TOKEN_FILE``'s first line, or
    ``SHADOWDIFF_TAP_TOKEN``); None without one (a sidecar that wants one refuses the tap)."""
    path = os.environ.get(ENV_TOKEN_FILE, "").strip()
    if path:
        try:
            with open(path, "rb") as handle:
                return handle.read(4096).split(b"\n", 1)[0].strip().decode("utf-8", "surrogateescape")
        except OSError:
            return None
    return os.environ.get(ENV_TOKEN) or None


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(FRAME.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket, limit: int = MAX_FRAME) -> bytes | None:
    """One frame, or None at a clean EOF between frames; ValueError for an oversized one."""
    head = _recv_exact(sock, FRAME.size)
    if head is None:
        return None
    (size,) = FRAME.unpack(head)
    if size > limit:
        raise ValueError(f"frame of {size} bytes is over the {limit}-byte limit")
    body = _recv_exact(sock, size)
    if body is None:
        raise ConnectionError("connection closed inside a frame")
    return body


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise ConnectionError("connection closed inside a frame")
            return None
        buf += chunk
    return bytes(buf)


# -- wire conversion -----------------------------------------------------------------------------------
def _packb(value: Any) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


# -- records ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Track:
    name: str
    post: Any
    context: dict[str, Any]
    cfg: Any = None
    needs_snapshot: bool = True


TRANSITION, CALL = 0, 1


class RecordBuilder:
    """Turns observed reducer calls into log records (docs/formats.md), per slot, by identity.

    An *item* is ``(kind, function, slot_hint, seq, args, kwargs, result)`` exactly as the bot's thread
    queued it. Socket-free, so the simulated bot's log generator builds its records with this very code.
    """

    def __init__(self, module: ModuleType, check_invariants: Callable[..., Any] | None = None) -> None:
        self.module = module
        self.wire = IdentityWire(module)
        self.check_invariants = check_invariants or module.check_invariants
        self.tracks: dict[str, _Track] = {}
        self._by_post: dict[int, _Track] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        self.counters: collections.Counter[str] = collections.Counter()

    def signature(self, name: str, fn: Callable[..., Any]) -> None:
        self._signatures[name] = inspect.signature(fn)

    def open(self, name: str, state: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        """Declare a slot with its state and context; its snapshot record (for a header, say)."""
        track = self.tracks[name] = _Track(name, state, dict(context))
        self._set_post(track, state)
        return self.snapshot(track, state)

    def records_for(self, item: tuple[Any, ...], deliver: bool = True) -> list[dict[str, Any]]:
        """The records for one call; with ``deliver`` False only the slot's state is followed."""
        kind, name, hint, seq, args, kwargs, result = item
        signature = self._signatures.get(name)
        if signature is None:
            signature = self._signatures[name] = inspect.signature(getattr(self.module, name))
        if kind == TRANSITION and not kwargs:  # the hot path: bots call transition positionally
            params = list(args)
            names: list[str] = []
        else:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = list(bound.arguments.values())
            names = list(bound.arguments)
        pre = params[0]
        post = result[0] if kind == TRANSITION else result
        track = self._track_for(hint, pre)
        out: list[dict[str, Any]] = []
        context_change = None
        if kind == TRANSITION:
            sizes = params[4] if len(params) > 4 else None
            context_change = self._context_change(track, params[2], params[3], sizes)
        if not deliver:
            track.needs_snapshot = True
            self._set_post(track, post)
            return out
        if track.needs_snapshot:
            out.append(self.snapshot(track, pre))
        elif pre is not track.post:
            delta = self.wire.delta(track.post, pre)
            if delta:
                out.append({"kind": "patch", "slot": track.name, "delta": delta})
                self.counters["patches"] += 1
        if kind == TRANSITION:
            record: dict[str, Any] = {
                "kind": "step",
                "slot": track.name,
                "seq": seq,
                "event": self.wire.typed(params[1]),
            }
            if context_change:
                record["context"] = context_change
            record["outcome"] = {
                "delta": self.wire.delta(pre, post),
                "actions": [self.wire.typed(a) for a in result[1]],
                "violations": list(self.check_invariants(post)),
            }
            self.counters["steps"] += 1
        else:
            call_args = dict(zip(names[1:], params[1:], strict=True))
            record = {"kind": "call", "slot": track.name, "seq": seq, "call": name, "args": call_args,
                      "outcome": {"delta": self.wire.delta(pre, post)}}  # fmt: skip
            self.counters["calls"] += 1
        out.append(record)
        self._set_post(track, post)
        return out

    def snapshot(self, track: _Track, state: Any) -> dict[str, Any]:
        track.needs_snapshot = False
        self.counters["snapshots"] += 1
        return {
            "kind": "snapshot",
            "slot": track.name,
            "state": self.wire.state(state),
            "context": dict(track.context),
        }

    def resnapshot_all(self) -> list[dict[str, Any]]:
        return [self.snapshot(t, t.post) for t in self.tracks.values()]

    def forget_delivery(self) -> None:
        """What was sent may be lost: every slot starts again with a snapshot."""
        for track in self.tracks.values():
            track.needs_snapshot = True

    def _context_change(self, track: _Track, cfg: Any, size: Any, sizes: Any) -> dict[str, Any] | None:
        change: dict[str, Any] = {}
        if cfg is not track.cfg:
            config = self.wire.config(cfg)
            track.cfg = cfg
            if config != track.context.get("config"):
                change["config"] = config
        size = float(size)
        if size != track.context.get("order_size_usd"):
            change["order_size_usd"] = size
        sizes = dict(sizes) if isinstance(sizes, Mapping) else None
        if "order_sizes" not in track.context or sizes != track.context["order_sizes"]:
            change["order_sizes"] = sizes
        if not change:
            return None
        track.context.update(change)
        return None if track.needs_snapshot else change

    def _track_for(self, hint: str | None, pre: Any) -> _Track:
        if hint is not None:
            track = self.tracks.get(hint)
            if track is None:
                track = self.tracks[hint] = _Track(hint, pre, {})
            return track
        track = self._by_post.get(id(pre))
        if track is not None and track.post is pre:
            return track
        best, score = None, 0
        for candidate in self.tracks.values():
            got = self.wire.kinship(pre, candidate.post)
            if got > score:
                best, score = candidate, got
        if best is not None:
            self.counters["chain_breaks"] += 1
            return best
        name = f"slot-{len(self.tracks)}"
        while name in self.tracks:
            name += "'"
        track = self.tracks[name] = _Track(name, pre, {})
        self._set_post(track, pre)
        return track

    def _set_post(self, track: _Track, post: Any) -> None:
        if self._by_post.get(id(track.post)) is track:
            del self._by_post[id(track.post)]
        track.post = post
        self._by_post[id(post)] = track


# -- the tap -------------------------------------------------------------------------------------------
class Tap:
    """One installed tap: the queue, the sender thread and the counters. Build it with ``install``."""

    def __init__(
        self,
        module: ModuleType,
        address: str,
        *,
        queue_size: int = 1 << 16,
        batch_size: int = 1024,
        idle_sleep: float = 0.005,
        exit_wait: float = 2.0,
        connect_timeout: float = 1.0,
        send_timeout: float = 2.0,
        cpu_share: float = 0.5,
    ) -> None:
        parse_address(address)
        # the sender shares the bot's GIL: past this share of wall time it sleeps, so a bot running flat
        # out keeps most of its CPU and the tap drops (and counts) what it cannot keep up with
        self.cpu_share = min(1.0, max(0.05, cpu_share))
        self.module = module
        self.address = address
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.exit_wait = exit_wait
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.tap_id = uuid.uuid4().hex
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._seq = itertools.count()
        self._queue_drops = itertools.count()  # next() is atomic: safe from any bot thread
        self._invariant_calls = itertools.count()
        self._originals: dict[str, Callable[..., Any]] = {}
        self.builder = RecordBuilder(module, module.check_invariants)
        self._sock: socket.socket | None = None
        self._next_attempt = 0.0
        self._backoff = 0.05
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._reported_queue_drops = 0
        self._pending_gaps: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=self._run, name="shadowdiff-tap", daemon=True)

    # -- bot side ------------------------------------------------------------------------------------
    def _wrap(self, name: str, kind: int) -> Callable[..., Any]:
        original = getattr(self.module, name)
        self._originals[name] = original
        self.builder.signature(name, original)
        queue = self._queue
        limit = self.queue_size
        seq = self._seq
        drops = self._queue_drops
        slot_var = _slot_var

        @functools.wraps(original)
        def tapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            try:
                if len(queue) < limit:
                    queue.append((kind, name, slot_var.get(), next(seq), args, kwargs, result))
                else:
                    next(drops)
            except Exception:  # the bot's call must never fail because of the tap
                pass
            return result

        setattr(tapped, _MARK, self)
        return tapped

    def _wrap_invariants(self) -> Callable[..., Any]:
        original = self.module.check_invariants
        self._originals["check_invariants"] = original
        calls = self._invariant_calls

        @functools.wraps(original)
        def tapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            next(calls)
            return result

        setattr(tapped, _MARK, self)
        return tapped

    def start(self) -> None:
        module = self.module
        wrapped = {"transition": self._wrap("transition", TRANSITION)}
        for name in CALL_FUNCTIONS:
            if callable(getattr(module, name, None)):
                wrapped[name] = self._wrap(name, CALL)
        wrapped["check_invariants"] = self._wrap_invariants()
        for name, fn in wrapped.items():
            setattr(module, name, fn)
        self._thread.start()
        atexit.register(self.close)

    def uninstall(self) -> None:
        """Put the originals back and stop (flushing within the exit bound)."""
        for name, fn in self._originals.items():
            if getattr(getattr(self.module, name, None), _MARK, None) is self:
                setattr(self.module, name, fn)
        self.close()

    def close(self, wait: float | None = None) -> None:
        """Flush what is queued and stop the sender, waiting at most ``wait`` (default exit_wait) s."""
        if self._stopped.is_set() or not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(self.exit_wait if wait is None else wait)

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out["dropped_queue"] = self._peek(self._queue_drops)
        out["calls"] = self._peek(self._seq) + out["dropped_queue"]
        out["invariant_calls"] = self._peek(self._invariant_calls)
        out["queued"] = len(self._queue)
        out.update(self.builder.counters)
        out["slots"] = len(self.builder.tracks)
        out["connected"] = int(self._sock is not None)
        return out

    @staticmethod
    def _peek(counter: itertools.count[int]) -> int:
        return int(repr(counter)[6:-1])  # count(n): the next value, without consuming it

    # -- sender thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                if stopping:
                    deadline = time.monotonic() + max(0.0, self.exit_wait - 0.1)
                    self._drain_until(deadline)
                    break
                if not self._queue:
                    self._maybe_connect()
                    time.sleep(self.idle_sleep)
                    continue
                started = time.perf_counter()
                self._one_batch()
                if self.cpu_share < 1.0:
                    busy = time.perf_counter() - started
                    time.sleep(busy * (1.0 / self.cpu_share - 1.0))
        except Exception as exc:  # pragma: no cover - a bug in the tap must not reach the bot
            self.counters["sender_crashed"] += 1
            with contextlib.suppress(Exception):
                sys.stderr.write(f"shadowdiff.tap: sender stopped: {type(exc).__name__}: {exc}\n")
        finally:
            self._disconnect()
            self._stopped.set()

    def _drain_until(self, deadline: float) -> None:
        if self._sock is None:
            self._next_attempt = 0.0  # one last try at exit, whatever the back-off says
        while self._queue and time.monotonic() < deadline:
            self._one_batch()
        self._one_batch()  # a last gap record for whatever could not be sent

    def _one_batch(self) -> None:
        self._maybe_connect()
        items = []
        queue = self._queue
        for _ in range(self.batch_size):
            if not queue:
                break
            items.append(queue.popleft())
        connected = self._sock is not None
        records: list[bytes] = []
        if connected:
            records.extend(self._gap_records())
        for item in items:
            try:
                built = self.builder.records_for(item, connected)
            except Exception:
                self.counters["dropped_build"] += 1
                self._pending_gaps["build_error"] += 1
                continue
            if not connected:
                self._pending_gaps["no_sidecar"] += 1
                continue
            for record in built:
                try:
                    records.append(_packb(record))
                except Exception:
                    self.counters["dropped_encode"] += 1
                    self._pending_gaps["encode_error"] += 1
                    track = self.builder.tracks.get(str(record.get("slot")))
                    if track is not None:
                        track.needs_snapshot = True
        if records:
            self._send(records, len(items))

    def _gap_records(self) -> list[bytes]:
        queue_drops = self._peek(self._queue_drops)
        if queue_drops > self._reported_queue_drops:
            self._pending_gaps["queue_full"] += queue_drops - self._reported_queue_drops
            self._reported_queue_drops = queue_drops
        out = []
        for reason, count in sorted(self._pending_gaps.items()):
            if count:
                out.append(
                    _packb(
                        {"kind": "gap", "slot": None, "dropped": count, "reason": reason, "tap": self.tap_id}
                    )
                )
        self._pending_gaps.clear()
        return out

    # -- connection ----------------------------------------------------------------------------------
    def _maybe_connect(self) -> None:
        if self._sock is not None or time.monotonic() < self._next_attempt:
            return
        try:
            sock = connect(self.address, self.connect_timeout)
            hello = {"kind": "hello", "protocol": TAP_PROTOCOL, "tap": self.tap_id, "pid": os.getpid(),
                     "module": getattr(self.module, "__name__", "?"), "format": LOG_FORMAT}  # fmt: skip
            token = tap_token()
            if token is not None:
                hello["token"] = token
            send_frame(sock, _packb(hello))
            answer = recv_frame(sock, 1 << 16)
            reply = msgpack.unpackb(answer, raw=False) if answer is not None else None
            if not isinstance(reply, dict) or not reply.get("ok"):
                sock.close()
                raise ConnectionError(f"the sidecar refused the tap: {reply!r}")
            sock.settimeout(self.send_timeout)
        except (OSError, ValueError, msgpack.ExtraData, msgpack.UnpackException):
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(1.0, self._backoff * 2)
            self.counters["connect_failures"] += 1
            return
        self._sock = sock
        self._backoff = 0.05
        self.counters["connects"] += 1
        if reply.get("snapshots", True):
            self.builder.forget_delivery()
        snapshots = [_packb(r) for r in self.builder.resnapshot_all()] if reply.get("snapshots", True) else []
        if snapshots:
            self._send(snapshots, 0)

    def _send(self, records: list[bytes], items: int) -> None:
        sock = self._sock
        if sock is None:
            self._pending_gaps["no_sidecar"] += items
            return
        try:
            send_frame(sock, b"".join(records))
        except OSError:
            self.counters["send_failures"] += 1
            self._pending_gaps["send_failed"] += items
            self._disconnect()
            return
        self.counters["records_sent"] += len(records)
        self.counters["batches"] += 1

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                sock.close()
            self.builder.forget_delivery()
            self._next_attempt = time.monotonic() + self._backoff


_installed: dict[int, Tap] = {}


def enabled() -> bool:
    """The bot's own switch: the tap is active only with DOGE_CORE_SHADOW=1."""
    return os.environ.get(ENV_SWITCH, "").strip() == "1"


def install(
    module: ModuleType, address: str | None = None, *, force: bool = False, **options: Any
) -> Tap | None:
    """Wrap ``module``'s reducer functions in place and start the sender; None when the tap is off.

    Off unless ``DOGE_CORE_SHADOW=1`` (or ``force``) and an address is given or in ``SHADOWDIFF_TAP``.
    Installing twice returns the first tap. Never raises for a bad address: it warns on stderr and
    leaves the module untouched, because the bot must run the same with or without the tap.
    """
    existing = _installed.get(id(module))
    if existing is not None:
        return existing
    if not (force or enabled()):
        return None
    address = address or os.environ.get(ENV_ADDRESS, "").strip()
    if not address:
        return None
    if "cpu_share" not in options and os.environ.get("SHADOWDIFF_TAP_CPU_SHARE"):
        with contextlib.suppress(ValueError):
            options["cpu_share"] = float(os.environ["SHADOWDIFF_TAP_CPU_SHARE"])
    if "exit_wait" not in options and os.environ.get(ENV_EXIT_WAIT):
        with contextlib.suppress(ValueError):
            options["exit_wait"] = float(os.environ[ENV_EXIT_WAIT])
    try:
        tap = Tap(module, address, **options)
        tap.start()
    except (ValueError, TypeError, AttributeError) as exc:
        sys.stderr.write(f"shadowdiff.tap: not installed: {exc}\n")
        return None
    _installed[id(module)] = tap
    return tap


def uninstall(module: ModuleType) -> None:
    tap = _installed.pop(id(module), None)
    if tap is not None:
        tap.uninstall()


# -- python -m shadowdiff.tap ----------------------------------------------------------------------------
USAGE = "usage: python -m shadowdiff.tap [--module NAME]... [--tap ADDR] (SCRIPT | -m MODULE) [ARGS...]"


def _parse_cli(argv: list[str]) -> tuple[list[str], str | None, str | None, str | None, list[str]]:
    """Options up to the program to run; everything after it is the program's (like coverage run)."""
    modules: list[str] = []
    address = script = run_module = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--module", "--tap") and not eq:
            if i + 1 >= len(argv):
                raise ValueError(f"{name} needs a value")
            value, i = argv[i + 1], i + 1
        if name == "--module":
            modules.append(value)
        elif name == "--tap":
            address = value
        elif arg == "-m":
            if i + 1 >= len(argv):
                raise ValueError("-m needs a module name")
            return modules, address, None, argv[i + 1], argv[i + 2 :]
        elif arg.startswith("-"):
            raise ValueError(f"unknown option {arg}")
        else:
            script = arg
            return modules, address, script, run_module, argv[i + 1 :]
        i += 1
    raise ValueError("name a SCRIPT or -m MODULE")


def main(argv: list[str] | None = None) -> int:
    """``python -m shadowdiff.tap``: run a program with the tap installed on its reducer module(s).

    Running under the tap is the opt-in, so DOGE_CORE_SHADOW defaults to 1 here; DOGE_CORE_SHADOW=0
    still disables it (the runbook's safe disable). Without --module, ``doge_core`` and
    ``state_machine`` are tapped, whichever the program can import.
    """
    import runpy

    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + (main.__doc__ or ""))
        return 0
    try:
        modules, address, script, run_module, rest = _parse_cli(args)
        if address:
            parse_address(address)
    except ValueError as exc:
        sys.stderr.write(f"{USAGE}\nshadowdiff.tap: error: {exc}\n")
        return 2
    if address:
        os.environ[ENV_ADDRESS] = address
    os.environ.setdefault(ENV_SWITCH, "1")
    if run_module is not None:
        sys.argv = [run_module, *rest]
        sys.path.insert(0, os.getcwd())
    else:
        assert script is not None
        sys.argv = [script, *rest]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    for name in modules or ["doge_core", "state_machine"]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            if modules:
                sys.stderr.write(f"shadowdiff.tap: cannot import {name}\n")
                return 2
            continue
        install(module)
    if run_module is not None:
        runpy.run_module(run_module, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
