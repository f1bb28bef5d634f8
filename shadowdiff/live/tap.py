"""The live tap: inside the bot's process, hand every reducer call to a sidecar without slowing the bot.

Standard library and msgpack only: this module must stay importable in a trading process without
pulling in the engine (no attrs-heavy modules, numpy, hypothesis or click).

    import state_machine
    from shadowdiff import tap
    tap.install(state_machine)   # only with DOGE_CORE_SHADOW=1 and SHADOWDIFF_TAP=unix:/p or tcp:127.0.0.1:N

    python -m shadowdiff.tap [--module doge_core] [--tap unix:/path] SCRIPT [ARGS...]
    python -m shadowdiff.tap --module state_machine -m package.bot [ARGS...]
    python -m shadowdiff.tap --slot-key mybot.keys:slot_of SCRIPT [ARGS...]

Naming slots: a bot that can, wraps its per-slot calls in ``with tap.slot(name):`` (a contextvar read,
the only cost on the bot's thread); a bot whose state carries an id needs no change:
``--slot-key module:function`` (or ``SHADOWDIFF_TAP_SLOT_KEY``) names a function that receives each
call's arguments exactly as the bot passed them (DOGE's ``transition(state, event, cfg, ...)``,
``apply_order_regime_at_entry(state, local_id, regime)``) and returns the
slot's name, or None to let the tap infer it. It runs on the tap's thread after the call, so it must
depend on its arguments only. Without either, the tap infers the slots (below).

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

What a call is made of comes from the domain, by parameter name (``Domain.tap_calls``, a
``shadowdiff.wire.format.CallView``, found through the ``shadowdiff.domains`` entry point or passed to
``install(..., calls=...)``): the step function, which of its parameters are the state, the event and the
context values recorded beside them, the other functions recorded as calls, and the invariant checker.
The names are resolved to positions once, so the hot path still reads positional arguments.

Which slot a call belongs to (the bot calls ``transition`` per slot without naming it):

1. the name set with ``with tap.slot("name"):`` on the calling thread/task (a contextvar), if any;
2. else the name the ``slot_key`` function returns for the call's arguments (``--slot-key
   module:function``; called on the tap's thread, never the bot's; None or an error: go on);
3. else the slot whose previous post-state *is* the pre-state (the identity chain);
4. else, unless the pre-state is the very state another slot started from (a start shared by several
   slots), the known slot the pre-state holds the most *strong evidence* of (``IdentityWire.evidence``):
   that slot's own non-empty tuples (history, orders) by identity, the items at their ends, the
   fields of those items (prices, volumes, times: what a rebuilt copy still shares), and scalars the
   slot acquired after it started; never None, bools, ints, strings, empty tuples, zeros, defaults,
   what the slot started with (a config float copied into every fresh state) or copied from its
   recent events, and never an object several slots hold (events shared by identical slots). One
   scalar alone is not enough. The bot changed that slot outside the reducer: a ``patch``;
5. else a new slot, named ``slot-N`` in order of appearance.

So slots whose states are equal in value stay apart (identity, not value, decides), and a chain break
costs O(slots x fields), never O(history); the chain itself is one dict lookup. What the reducer copied
from a slot's last four events (a price, a time) weighs nothing either: a slot created mid-run from
the very event objects another slot just stepped with is a new slot. What identity cannot tell apart,
name: two slots handed one state object that the reducer then returns unchanged are one chain.

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
import json
import os
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import msgpack

from shadowdiff.wire.format import LOG_FORMAT, TAP_PROTOCOL, CallView, ContextParam
from shadowdiff.wire.identity import IdentityWire

ENV_SWITCH = "DOGE_CORE_SHADOW"
ENV_ADDRESS = "SHADOWDIFF_TAP"
ENV_EXIT_WAIT = "SHADOWDIFF_TAP_EXIT_WAIT"
ENV_RUNTIME = "SHADOWDIFF_TAP_RUNTIME"  # the bot_runtime.json the bot starts from: slot names
ENV_SLOT_KEY = "SHADOWDIFF_TAP_SLOT_KEY"
ENV_TOKEN_FILE = "SHADOWDIFF_TAP_TOKEN_FILE"  # the sidecar's --token-file: its first line is the secret
ENV_TOKEN = "SHADOWDIFF_TAP_TOKEN"  # or the secret itself
FRAME = struct.Struct(">I")
MAX_FRAME = 64 << 20
DOMAINS = "shadowdiff.domains"  # the entry point group of the domains (shadowdiff.cli.domains)
_MARK = "__shadowdiff_tap__"

_slot_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("shadowdiff_tap_slot", default=None)


class _SlotName:
    """``with tap.slot(name):`` (a plain class: a third of a generator-based context manager's cost)."""

    __slots__ = ("name", "token")

    def __init__(self, name: str) -> None:
        self.name = str(name)
        self.token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self.token = _slot_var.set(self.name)

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _slot_var.reset(self.token)
            self.token = None


def slot(name: str) -> _SlotName:
    """Name the slot of every reducer call made inside the block (this thread or asyncio task only):

        with tap.slot("slot-3"):
            state, actions = state_machine.transition(state, event, cfg, size)

    Works whether or not a tap is installed (it only sets a contextvar, a fraction of a microsecond),
    so a bot can name its slots unconditionally; nested blocks name the innermost slot."""
    return _SlotName(name)


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
    origin: Any = None  # the state the slot was first seen with (kept, so identities stay valid)
    origin_values: tuple[Any, ...] = ()
    # the slot's last few events: what the reducer copied from them (a price, a time) every slot
    # stepped with the same event objects holds too, so it is no evidence of this one
    events: collections.deque[Any] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=4))
    active: int = 0  # when the slot last had a call (the builder's call count)
    patches: int = 0


TRANSITION, CALL = 0, 1


def domain_calls(name: str | None = None) -> CallView:
    """The call declaration (``Domain.tap_calls``) of the installed domain named ``name`` (default:
    ``SHADOWDIFF_DOMAIN``, else the only one installed); a bare ``CallView()`` when none is installed.
    A domain module is light at import (standard library and ``shadowdiff.wire.format``), so this pulls
    no engine into the bot's process. ValueError naming the choice when it is ambiguous or unknown."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=DOMAINS)}
    name = name or os.environ.get("SHADOWDIFF_DOMAIN", "").strip() or None
    if name is None and len(found) > 1:
        raise ValueError(f"several domains are installed ({', '.join(sorted(found))}): set SHADOWDIFF_DOMAIN")
    if name is not None and name not in found:
        raise ValueError(f"unknown domain {name!r} (installed: {', '.join(sorted(found)) or 'none'})")
    if not found:
        return CallView()
    calls = (found[name] if name is not None else next(iter(found.values()))).load().tap_calls
    if not isinstance(calls, CallView):
        raise ValueError(f"the domain's tap_calls is not a CallView: {calls!r}")
    return calls


class _StepView:
    """Where the step function's state, event and context values are, by position, resolved once from
    the declaration (by name) and the function's own signature."""

    def __init__(self, calls: CallView, signature: inspect.Signature) -> None:
        names = list(signature.parameters)
        wanted = [calls.state, calls.event, *(p.parameter for p in calls.context)]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValueError(f"{calls.step}{signature} has no parameter {', '.join(map(repr, missing))}")
        self.state = names.index(calls.state)
        self.event = names.index(calls.event)
        self.context: list[tuple[ContextParam, int, Any]] = []
        for param in calls.context:
            default = signature.parameters[param.parameter].default
            default = param.default if default is inspect.Parameter.empty else default
            self.context.append((param, names.index(param.parameter), default))


class RecordBuilder:
    """Turns observed reducer calls into log records (docs/formats.md), per slot, by identity.

    An *item* is ``(kind, function, slot_hint, seq, args, kwargs, result)`` exactly as the bot's thread
    queued it. Socket-free, so the simulated bot's log generator builds its records with this very code.
    """

    def __init__(
        self,
        module: ModuleType,
        check_invariants: Callable[..., Any] | None = None,
        slot_key: Callable[..., Any] | None = None,
        calls: CallView | None = None,
    ) -> None:
        self.module = module
        self.calls = calls if calls is not None else domain_calls()
        self.step = _StepView(self.calls, inspect.signature(getattr(module, self.calls.step)))
        self.wire = IdentityWire(module)
        self.check_invariants = check_invariants or getattr(module, self.calls.invariants)
        self.slot_key = slot_key
        self.tracks: dict[str, _Track] = {}
        self._by_post: dict[int, _Track] = {}
        self._by_origin: dict[int, _Track] = {}
        self._calls = 0
        self._signatures: dict[str, inspect.Signature] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self.namer: Callable[[Any], str | None] | None = None  # a new slot's name from its first state

    def signature(self, name: str, fn: Callable[..., Any]) -> None:
        self._signatures[name] = inspect.signature(fn)

    def open(self, name: str, state: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        """Declare a slot with its state and context; its snapshot record (for a header, say)."""
        track = self._new_track(name, state)
        track.context = dict(context)
        return self.snapshot(track, state)

    def records_for(self, item: tuple[Any, ...], deliver: bool = True) -> list[dict[str, Any]]:
        """The records for one call; with ``deliver`` False only the slot's state is followed."""
        kind, name, hint, seq, args, kwargs, result = item
        signature = self._signatures.get(name)
        if signature is None:
            signature = self._signatures[name] = inspect.signature(getattr(self.module, name))
        view = self.step
        if kind == TRANSITION and not kwargs:  # the hot path: bots call the step function positionally
            pre, event = args[view.state], args[view.event]
            context = [(p, args[i] if i < len(args) else default) for p, i, default in view.context]
            params: list[Any] = []
            names: list[str] = []
        else:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = list(bound.arguments.values())
            names = list(bound.arguments)
            if kind == TRANSITION:
                pre, event = bound.arguments[self.calls.state], bound.arguments[self.calls.event]
                context = [(p, bound.arguments[p.parameter]) for p, _, _ in view.context]
            else:
                pre, event, context = params[0], None, []
        post = result[0] if kind == TRANSITION else result
        if hint is None and self.slot_key is not None:
            hint = self._key(args, kwargs)
        track = self._track_for(hint, pre)
        out: list[dict[str, Any]] = []
        context_change = None
        if kind == TRANSITION:
            context_change = self._context_change(track, context)
            track.events.append(event)
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
                track.patches += 1
        if kind == TRANSITION:
            record: dict[str, Any] = {
                "kind": "step",
                "slot": track.name,
                "seq": seq,
                "event": self.wire.typed(event),
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

    def _context_change(
        self, track: _Track, context: list[tuple[ContextParam, Any]]
    ) -> dict[str, Any] | None:
        """The context values (as the domain declares them) that changed since the slot's last step."""
        change: dict[str, Any] = {}
        value: Any
        for param, raw in context:
            if param.kind == "config":
                if raw is track.cfg:  # the bot's config object, unchanged: nothing to convert
                    continue
                track.cfg = raw
                value = self.wire.config(raw)
            elif param.kind == "float":
                value = float(raw)
            elif param.kind == "mapping":
                value = dict(raw) if isinstance(raw, Mapping) else None
            else:
                value = raw
            if param.key not in track.context or value != track.context[param.key]:
                change[param.key] = value
        if not change:
            return None
        track.context.update(change)
        return None if track.needs_snapshot else change

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        assert self.slot_key is not None
        try:
            name = self.slot_key(*args, **kwargs)
        except Exception:  # a bad key names nothing: the call is attributed as if there were no key
            self.counters["slot_key_errors"] += 1
            return None
        return None if name is None else str(name)

    def _track_for(self, hint: str | None, pre: Any) -> _Track:
        self._calls += 1
        if hint is not None:
            track = self.tracks.get(hint)
            if track is None:
                track = self._new_track(hint, pre)
            track.active = self._calls
            return track
        track = self._by_post.get(id(pre))
        if track is not None and track.post is pre:  # the identity chain
            track.active = self._calls
            return track
        self.counters["chain_breaks"] += 1
        started = self._by_origin.get(id(pre))
        if started is None or started.origin is not pre:  # a start given to a second slot is new
            track = self._attribute(pre)
            if track is not None:
                track.active = self._calls
                return track
        name = (self.namer(pre) if self.namer is not None else None) or f"slot-{len(self.tracks)}"
        while name in self.tracks:
            name += "'"
        track = self._new_track(name, pre)
        track.active = self._calls
        return track

    def _attribute(self, pre: Any) -> _Track | None:
        """The known slot ``pre`` holds strong evidence of (wire.evidence), objects only it holds."""
        tracks = list(self.tracks.values())
        known = [(t.post, t.origin_values, self._event_ids(t)) for t in tracks]
        evidence = self.wire.evidence(pre, known)
        found = [(t, e) for t, e in zip(tracks, evidence, strict=True) if e]
        if not found:
            return None
        seen: collections.Counter[int] = collections.Counter()
        for _, got in found:
            seen.update(got.keys())  # an object several slots hold says nothing about which one this is
        best, score = None, 1  # one scalar alone is not enough
        for track, got in found:
            total = sum(w for k, w in got.items() if seen[k] == 1) if len(found) > 1 else sum(got.values())
            if total > score or (total == score and best is not None and track.active > best.active):
                best, score = track, total
        return best

    def _event_ids(self, track: _Track) -> set[int]:
        out: set[int] = set()
        for event in track.events:
            out.update(map(id, self.wire.values(event)))
        return out

    def _new_track(self, name: str, state: Any) -> _Track:
        track = self.tracks[name] = _Track(
            name, state, {}, origin=state, origin_values=self.wire.values(state)
        )
        self._by_origin[id(state)] = track
        self._set_post(track, state)
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
        slot_key: Callable[..., Any] | None = None,
        calls: CallView | None = None,
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
        self.builder = RecordBuilder(module, None, slot_key, calls)
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
        name = self.builder.calls.invariants
        original = getattr(self.module, name)
        self._originals[name] = original
        calls = self._invariant_calls

        @functools.wraps(original)
        def tapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            next(calls)
            return result

        setattr(tapped, _MARK, self)
        return tapped

    def start(self) -> None:
        module, calls = self.module, self.builder.calls
        wrapped = {calls.step: self._wrap(calls.step, TRANSITION)}
        for name in calls.calls:
            if callable(getattr(module, name, None)):
                wrapped[name] = self._wrap(name, CALL)
        wrapped[calls.invariants] = self._wrap_invariants()
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
        if reply.get("slot_names") and self.builder.namer is None:  # the sidecar knows the bot's file
            self.builder.namer = _namer_from_pairs(reply["slot_names"])
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
        if "slot_key" not in options and os.environ.get(ENV_SLOT_KEY, "").strip():
            options["slot_key"] = load_function(os.environ[ENV_SLOT_KEY].strip())
        tap = Tap(module, address, **options)
        runtime = os.environ.get(ENV_RUNTIME, "").strip()
        if runtime:
            try:
                tap.builder.namer = _namer_from_pairs(runtime_slot_names(runtime))
            except (OSError, ValueError) as exc:  # names only: the tap runs on with slot-N names
                sys.stderr.write(f"shadowdiff.tap: {runtime}: slot names not read: {exc}\n")
        tap.start()
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        sys.stderr.write(f"shadowdiff.tap: not installed: {exc}\n")
        return None
    _installed[id(module)] = tap
    return tap


def load_function(spec: str) -> Callable[..., Any]:
    """``package.module:function`` (dots after the colon reach attributes); ValueError naming why not."""
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"not module:function: {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{spec}: cannot import {module_name}: {exc}") from None
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"{spec}: {module_name} has no {qualname}")
    if not callable(target):
        raise ValueError(f"{spec}: not a function")
    fn: Callable[..., Any] = target
    return fn


def uninstall(module: ModuleType) -> None:
    tap = _installed.pop(id(module), None)
    if tap is not None:
        tap.uninstall()


# -- slot names from the bot's bot_runtime.json ------------------------------------------------------------
def _slot_key(values: Any) -> tuple[int, int, int, int] | None:
    """What a slot's state still shows right after the bot loaded it from its file (reseeding and txid
    binding do not change it): completed cycles, round trips, cycle_a, cycle_b."""

    def get(key: str, default: Any) -> Any:
        return values.get(key, default) if isinstance(values, Mapping) else getattr(values, key, default)

    try:
        cycles = list(get("completed_cycles", ()) or ())
        if isinstance(values, Mapping):  # as from_dict reads a saved list: entries that are maps
            cycles = [c for c in cycles if isinstance(c, Mapping)]
        return len(cycles), int(get("total_round_trips", 0)), int(get("cycle_a", 1)), int(get("cycle_b", 1))
    except (TypeError, ValueError):
        return None


def runtime_slot_names(path: str) -> list[tuple[list[int], str]]:
    """(key, name) pairs for the slots of a bot_runtime.json: ``slot-<id>`` or ``slot-<id> (<alias>)``,
    the names ``shadowdiff replay`` gives them; slots whose keys are not unique are left out."""
    with open(path, encoding="utf-8") as stream:
        data = json.load(stream)
    slots = data.get("slots") if isinstance(data, dict) else None
    if not isinstance(slots, dict):
        raise ValueError("not a bot_runtime.json (no 'slots' object)")
    aliases = data.get("slot_aliases") if isinstance(data.get("slot_aliases"), dict) else {}
    keyed: dict[tuple[int, int, int, int], list[str]] = collections.defaultdict(list)
    for sid, state in slots.items():
        alias = str(aliases.get(str(sid)) or "").strip()
        key = _slot_key(state) if isinstance(state, dict) else None
        if key is not None:
            keyed[key].append(f"slot-{sid} ({alias})" if alias else f"slot-{sid}")
    return [(list(key), names[0]) for key, names in keyed.items() if len(names) == 1]


def _namer_from_pairs(pairs: Any) -> Callable[[Any], str | None]:
    table = {tuple(key): str(name) for key, name in pairs}

    def namer(state: Any) -> str | None:
        return table.get(_slot_key(state))  # type: ignore[arg-type]

    return namer


# -- python -m shadowdiff.tap ----------------------------------------------------------------------------
USAGE = (
    "usage: python -m shadowdiff.tap [--module NAME]... [--tap ADDR] [--slot-key MODULE:FUNCTION]"
    " [--runtime BOT_RUNTIME_JSON] (SCRIPT | -m MODULE) [ARGS...]"
)


@dataclasses.dataclass
class _Cli:
    """The options of ``python -m shadowdiff.tap``; one field per option (see ``_OPTIONS``)."""

    module: list[str] = dataclasses.field(default_factory=list)
    tap: str | None = None
    slot_key: str | None = None
    runtime: str | None = None
    script: str | None = None
    run_module: str | None = None
    rest: list[str] = dataclasses.field(default_factory=list)


# option -> (field of _Cli, repeatable); every option takes one value, as --opt V or --opt=V
_OPTIONS: dict[str, tuple[str, bool]] = {
    "--module": ("module", True),
    "--tap": ("tap", False),
    "--slot-key": ("slot_key", False),
    "--runtime": ("runtime", False),  # the bot_runtime.json the bot starts from: slot names
}


def _parse_cli(argv: list[str]) -> _Cli:
    """Options up to the program to run; everything after it is the program's (like coverage run)."""
    cli = _Cli()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{name} needs a value")
                value, i = argv[i + 1], i + 1
            field, repeatable = _OPTIONS[name]
            if repeatable:
                getattr(cli, field).append(value)
            else:
                setattr(cli, field, value)
        elif arg == "-m":
            if i + 1 >= len(argv):
                raise ValueError("-m needs a module name")
            cli.run_module, cli.rest = argv[i + 1], argv[i + 2 :]
            return cli
        elif arg.startswith("-"):
            raise ValueError(f"unknown option {arg}")
        else:
            cli.script, cli.rest = arg, argv[i + 1 :]
            return cli
        i += 1
    raise ValueError("name a SCRIPT or -m MODULE")


def main(argv: list[str] | None = None) -> int:
    """``python -m shadowdiff.tap``: run a program with the tap installed on its reducer module(s).

    Running under the tap is the opt-in, so DOGE_CORE_SHADOW defaults to 1 here; DOGE_CORE_SHADOW=0
    still disables it (the runbook's safe disable). Without --module, the domain's bot modules
    (``CallView.modules``; DOGE's ``doge_core`` and ``state_machine``) are tapped, whichever the program
    can import.

    Slots: the tap infers which slot each reducer call belongs to by identity. A program that can name
    them wraps its per-slot calls in ``with shadowdiff.tap.slot(name):``; one that cannot be changed
    but whose state carries an id gets ``--slot-key module:function`` (also SHADOWDIFF_TAP_SLOT_KEY):
    the function receives each call's arguments as the bot passed them and returns the slot's name
    (None: infer it). It is imported before the program runs (a bad one exits 2) and called on the
    tap's thread, never the bot's.
    """
    import runpy

    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + (main.__doc__ or ""))
        return 0
    try:
        cli = _parse_cli(args)
        if cli.tap:
            parse_address(cli.tap)
    except ValueError as exc:
        sys.stderr.write(f"{USAGE}\nshadowdiff.tap: error: {exc}\n")
        return 2
    if cli.tap:
        os.environ[ENV_ADDRESS] = cli.tap
    if cli.runtime:
        os.environ[ENV_RUNTIME] = cli.runtime
    os.environ.setdefault(ENV_SWITCH, "1")
    if cli.run_module is not None:
        sys.argv = [cli.run_module, *cli.rest]
        sys.path.insert(0, os.getcwd())
    else:
        assert cli.script is not None
        sys.argv = [cli.script, *cli.rest]
        sys.path.insert(0, os.path.dirname(os.path.abspath(cli.script)))
    options: dict[str, Any] = {}
    if cli.slot_key:
        try:  # resolved once the program's directory is importable: the key may live next to it
            options["slot_key"] = load_function(cli.slot_key)
        except ValueError as exc:
            sys.stderr.write(f"shadowdiff.tap: error: --slot-key {exc}\n")
            return 2
    try:
        default_modules = [] if cli.module else list(domain_calls().modules)
    except ValueError as exc:
        sys.stderr.write(f"shadowdiff.tap: error: {exc}\n")
        return 2
    for name in cli.module or default_modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            if cli.module:
                sys.stderr.write(f"shadowdiff.tap: cannot import {name}\n")
                return 2
            continue
        install(module, **options)
    if cli.run_module is not None:
        runpy.run_module(cli.run_module, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(str(cli.script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
