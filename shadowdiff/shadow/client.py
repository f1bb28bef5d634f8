"""A reducer that runs as a subprocess: PROTOCOL.md over msgpack, or the older JSON-lines transport.

Requests are pipelined: ``submit`` encodes and buffers, ``poll`` reads what has arrived and hands back
results in order. Against a server that offers sessions the state stays in the server and only events
and deltas cross the pipe; otherwise (older servers, ``jsonl``) the client holds each slot's state and
sends it whole. In lockstep the engine passes the authoritative delta as a hint, so even the whole-state
path can send step n+1 before step n is answered.

Every way a shadow can misbehave becomes a ``Failure`` value for the request it was serving: crash
(stdout closed, process exited), timeout (no answer within the deadline; the process is killed),
protocol (not msgpack/JSON, wrong id, missing field), error (the server answered ``error``). After a
fatal one the process is restarted with bounded back-off; requests that were in flight behind the
failed one come back as ``lost`` so the engine can send them again, never silently retried. ``submit``
never waits out the back-off: while the process is down, requests queue here, and the restart happens
in ``poll`` (which may wait for it when asked to wait) or in a synchronous call.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from shadowdiff.core.domain import Domain
from shadowdiff.core.reducer import (
    Close,
    Open,
    Patch,
    ReducerShadow,
    Request,
    Result,
    ShadowFailureError,
    Step,
    UnsupportedOp,
    step_from,
)
from shadowdiff.model.errors import ShadowSetupError
from shadowdiff.model.values import Call, Context, Event, Failure, Outcome, StepResult, WireMap
from shadowdiff.shadow.transport import FramingError, Process, ProcessGone, describe_exit
from shadowdiff.wire.codec import apply_delta, compute_delta, packb, same_value
from shadowdiff.wire.format import PROTOCOL_VERSION

HISTORY_MODES = ("whole", "trim", "last")
HELLO_CLIENT = "shadowdiff\n"
_JSON_OPENERS = (ord("{"), ord("["))  # the first byte of a JSON answer, decoded as a msgpack fixint
JSONL_HINT = "--codec jsonl (pytest plugin: --shadowdiff-codec jsonl or SHADOWDIFF_CODEC=jsonl)"
FLUSH_BYTES = 1 << 14  # batch requests into few large writes: one write wakes the shadow once
HANDSHAKE_SECONDS = 20.0  # start-up (an interpreter importing its modules) is not a request
SESSION_OPS = frozenset({"open", "step", "patch", "get", "close"})
LOST = "lost"


@attrs.define
class _Entry:
    ticket: int
    request: Request | None
    parts: int = 0
    result: Result = None
    done: bool = False
    pre: WireMap | None = None
    capture: dict[str, Any] | None = None  # a synchronous request keeps the raw answer here


@attrs.define
class _Trimmed:
    """A slot's last step sent with its history trimmed: enough to send it again whole at the end."""

    pre: WireMap
    message: WireMap
    op: str
    post: WireMap | None = None  # what the trimmed answer made of the whole state


@attrs.define
class _Wire:
    entry: _Entry
    op: str
    rid: int | None
    sent: float
    state: WireMap | None = None  # the pre-state a whole-state transition was sent with
    expect: bytes | None = None  # the answer that would agree with the authority, byte for byte
    full: WireMap | None = None  # the whole pre-state when ``state`` was sent with its history trimmed


class SubprocessReducer(ReducerShadow):
    """The shadow (or any reducer) as a child process. ``command`` is an argv list or a shell-like string.

    Both seams at once: a ``Shadow`` (pipelined, its failures as results, restarted on failure) and a
    synchronous ``Reducer`` (``transition``, ``check_invariants``, ``call`` wait for their answer)."""

    dead: str | None = None
    sessions: bool = False

    def __init__(
        self,
        command: Sequence[str] | str,
        codec: str = "msgpack",
        domain: Domain | None = None,
        deadline: float = 10.0,
        max_restarts: int = 8,
        use_sessions: bool | None = None,
        history: str = "whole",
        full_check_every: int = 5000,
    ) -> None:
        """``history`` (whole-state transports only): "whole" sends every state as it is; "trim" sends
        the domain's history fields empty and "last" with only their last record, and then every
        ``full_check_every``-th step of a slot (in lockstep: the first step after that which appends to
        the history, within another N) and a slot's last step (through ``get``) go whole, so a shadow
        that reads or rewrites its history is still caught."""
        super().__init__()
        if history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {', '.join(HISTORY_MODES)}, not {history!r}")
        self.history = history
        self.full_check_every = max(1, full_check_every)
        self._since_full: dict[str, int] = {}
        self._last_trimmed: dict[str, _Trimmed] = {}
        self.process = Process(command, codec)
        self.codec = codec
        self.domain = domain or Domain()
        self.deadline = deadline
        self.max_restarts = max_restarts
        self.use_sessions = use_sessions
        self.name = " ".join(self.process.argv)
        self.ops: frozenset[str] = frozenset()
        self.implementation = "unknown"
        self.version = "unknown"
        self.sessions = False
        self.dead: str | None = None
        self._restarts = 0
        self._failures_in_a_row = 0
        self._restart_at = 0.0  # the earliest a restart may be tried (bounded back-off)
        self._deferred: collections.deque[_Entry] = collections.deque()  # submitted while down
        self._entries: collections.deque[_Entry] = collections.deque()
        self._wires: collections.deque[_Wire] = collections.deque()
        self._session_ids: dict[str, int] = {}
        self._packed_contexts: dict[int, tuple[Context, bytes, bytes]] = {}
        self._next_session = 1
        self._next_ticket = 0
        self._next_id = 1
        self._started = False
        self._start()

    # -- lifecycle --------------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            self.process.start()
        except FileNotFoundError as exc:
            raise ShadowSetupError(f"shadow executable not found: {self.process.argv[0]}") from exc
        except PermissionError as exc:
            raise ShadowSetupError(f"shadow executable is not executable: {self.process.argv[0]}") from exc
        self._next_id = 1
        self._session_ids.clear()
        self._held.clear()
        if self.codec == "msgpack":
            self._handshake()
        else:
            self.sessions = False
        self._started = True

    def _handshake(self) -> None:
        # The hello carries a newline inside a string: a msgpack server ignores the unknown key, and a
        # JSON-lines server (the real doge-core-exe --server) sees a whole, bad line and answers
        # {"error": ...} at once, instead of waiting for a newline that never comes.
        try:  # a shadow that exits at once (refusing its arguments) may be gone before the hello is written
            self.process.send({"op": "hello", "id": 0, "protocol": PROTOCOL_VERSION, "client": HELLO_CLIENT})
            self.process.flush()
            reply = self._receive_one(max(self.deadline, HANDSHAKE_SECONDS))
        except (ProcessGone, FramingError) as exc:
            tail = " | ".join(self.process.tail()[-3:])
            self.process.stop(grace=0)
            raise ShadowSetupError(
                f"handshake failed: {exc}" + (f"; stderr: {tail}" if tail else "")
            ) from exc
        if reply in _JSON_OPENERS:  # '{' or '[' read as msgpack: the shadow answered in JSON
            self.process.stop(grace=0)
            raise ShadowSetupError(
                f"{self.name} speaks JSON lines, not msgpack: it answered the msgpack hello with a JSON "
                f"line; pass {JSONL_HINT}"
            )
        ok = reply.get("ok") if isinstance(reply, dict) else None
        if not isinstance(ok, dict) or reply.get("id") != 0:
            self.process.stop(grace=0)
            raise ShadowSetupError(f"handshake failed: unexpected answer to hello: {str(reply)[:120]}")
        if ok.get("protocol") != PROTOCOL_VERSION:
            self.process.stop(grace=0)
            raise ShadowSetupError(
                f"protocol mismatch: shadowdiff speaks protocol {PROTOCOL_VERSION}, "
                f"the shadow speaks protocol {ok.get('protocol')}"
            )
        self.ops = frozenset(str(op) for op in ok.get("ops", ()))
        self.implementation = str(ok.get("implementation", "unknown"))
        self.version = str(ok.get("version", "unknown"))
        offered = self.ops >= SESSION_OPS
        self.sessions = offered if self.use_sessions is None else (self.use_sessions and offered)

    def _receive_one(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = self.process.receive(max(0.0, deadline - time.monotonic()))
            if got:
                first = got[0]
                return self.process.framing.decode(first) if type(first) is bytes else first
            if time.monotonic() >= deadline:
                raise ProcessGone(None) if not self.process.running else FramingError("no answer to hello")

    def _ensure_running(self, wait: bool) -> None:
        """Restart the process if it failed and its back-off is over; with ``wait``, wait the back-off
        out (and go on trying) until it runs or the client gives up for good."""
        # no waitpid per request: a process that died shows as EOF or a broken pipe, and _fatal
        # clears _started; a restart is only ever needed after that
        while not self._started and self.dead is None:
            if self._failures_in_a_row > self.max_restarts:
                self.dead = f"gave up after {self.max_restarts} restarts in a row"
                break
            delay = self._restart_at - time.monotonic()
            if delay > 0:
                if not wait:
                    return
                time.sleep(delay)
            try:
                self._start()
                self._restarts += 1
            except ShadowSetupError:
                self._failures_in_a_row += 1
                self._back_off()
        if self.dead is not None:
            while self._deferred:  # not a new failure: the engine stops checking and says why
                self._resolve(self._deferred.popleft(), Failure(LOST, f"shadow {self.dead}"))
        elif self._started:
            while self._deferred and self._started:
                entry = self._deferred.popleft()
                if not entry.done:
                    self._dispatch(entry)

    def _back_off(self) -> None:
        self._restart_at = time.monotonic() + min(2.0, 0.02 * (2 ** min(self._failures_in_a_row, 7)))

    @property
    def restarts(self) -> int:
        return self._restarts

    def describe(self) -> str:
        how = "sessions" if self.sessions else "whole states"
        return f"{self.name} ({self.codec}, {how}, {self.implementation} {self.version})"

    def close(self) -> None:
        self.process.stop()

    def outcome(self, state: WireMap, request: Step) -> StepResult:
        return step_from(self, state, request)

    def interrupt(self) -> None:
        self.process.hurry = True

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, request: Request) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        entry = _Entry(ticket, request)
        self._entries.append(entry)
        if self.dead is not None:  # not a new failure: the engine stops checking and says why
            self._resolve(entry, Failure(LOST, f"shadow {self.dead}"))
        elif not self._started or self._deferred:  # down: sent once ``poll`` has restarted it
            self._deferred.append(entry)
        else:
            self._dispatch(entry)
        return ticket

    def _dispatch(self, entry: _Entry) -> None:
        request = entry.request
        assert request is not None
        try:
            if self.sessions:
                self._submit_session(entry, request)
            else:
                self._submit_whole(entry, request)
        except ProcessGone as exc:
            self._fatal("crash", f"shadow {exc}", exc.exit_code)
        except (OverflowError, TypeError, ValueError) as exc:  # e.g. an int beyond msgpack's 64 bits
            if not entry.done and entry.parts == 0:
                self._resolve(entry, Failure("error", f"request not encodable for the shadow: {exc}"))
        if entry.parts == 0 and not entry.done:
            self._resolve(entry, None)

    def _send(
        self,
        entry: _Entry,
        message: WireMap,
        op: str,
        state: WireMap | None = None,
        expect: WireMap | None = None,
    ) -> None:
        """``expect``: the ``ok`` result that would agree with the authority (msgpack answers only)."""
        # JSON lines carry no ids: the request is still numbered (its line on the shadow's stdin since
        # the process started), so a failure names the request it was serving
        rid = self._next_id
        self._next_id += 1
        if self.codec == "msgpack":
            message["id"] = rid
        self.process.send(message)
        wire = _Wire(entry, op, rid, time.monotonic(), state)
        if expect is not None and self.codec == "msgpack":
            wire.expect = _expected_answer(rid, expect)
        self._wires.append(wire)
        entry.parts += 1

    def _submit_session(self, entry: _Entry, request: Request) -> None:
        if isinstance(request, Open):
            if request.slot in self._session_ids:
                self._send(entry, {"op": "close", "session": self._session_ids[request.slot]}, "close")
            new_sid = self._session_ids[request.slot] = self._next_session
            self._next_session += 1
            self._send(entry, {"op": "open", "session": new_sid, "state": request.state}, "open")
            return
        sid = self._session_ids.get(request.slot)
        if sid is None:
            if not isinstance(request, Close):  # closing a slot a restart forgot is already done
                self._resolve(
                    entry, Failure("error", f"slot {request.slot!r} was never opened on the shadow")
                )
            return
        if isinstance(request, Step):
            item = request.input
            if isinstance(item, Call):
                msg = {"op": "call", "session": sid, "function": item.function, "args": item.args}
                agrees = {"delta": request.expect.delta} if request.expect is not None else None
                self._send(entry, msg, "call", expect=agrees)
            else:
                self._send_step(entry, sid, item, request)
        elif isinstance(request, Patch):
            self._send(entry, {"op": "patch", "session": sid, "delta": request.delta}, "patch")
        elif isinstance(request, Close):
            del self._session_ids[request.slot]
            self._send(entry, {"op": "close", "session": sid}, "close")

    def _send_step(self, entry: _Entry, sid: int, item: Event, request: Step) -> None:
        """The hot path: a session step, encoded from pre-packed parts (the context rarely changes)."""
        ctx, with_invariants = request.context, request.with_invariants
        if self.codec != "msgpack":
            msg = {"op": "step", "session": sid, "event": item.to_wire(), **ctx.to_wire()}
            msg["with_invariants"] = with_invariants
            self._send(entry, msg, "step")
            return
        packed = self._packed_contexts.get(id(ctx))
        if packed is None or packed[0] is not ctx:
            tail = b"".join(packb(key) + packb(value) for key, value in ctx.to_wire().items())
            if len(self._packed_contexts) > 256:
                self._packed_contexts.clear()
            packed = self._packed_contexts[id(ctx)] = (ctx, _step_head(1 + len(ctx.params)), tail)
        rid = self._next_id
        self._next_id += 1
        self.process.send_raw(
            b"".join((
                packed[1], packb(rid), _SESSION_KEY, packb(sid), _EVENT_KEY,
                packb({"type": item.type, "payload": item.payload}), packed[2],
                _WITH_INVARIANTS_TRUE if with_invariants else _WITH_INVARIANTS_FALSE,
            ))
        )  # fmt: skip
        wire = _Wire(entry, "step", rid, time.monotonic())
        expect = request.expect
        if expect is not None:
            ok: dict[str, Any] = {"actions": expect.actions, "delta": expect.delta}
            if with_invariants:
                ok["violations"] = expect.violations
            wire.expect = _expected_answer(rid, ok)
        self._wires.append(wire)
        entry.parts += 1

    def _submit_whole(self, entry: _Entry, request: Request) -> None:
        if isinstance(request, Open):
            self._held[request.slot] = request.state
            return
        if isinstance(request, Close):
            self._held.pop(request.slot, None)
            return
        pre = self._known_state(request.slot)
        if pre is None:
            self._resolve(entry, Failure("error", f"slot {request.slot!r} was never opened on the shadow"))
            return
        if isinstance(request, Patch):
            self._held[request.slot] = apply_delta(pre, request.delta)
            return
        entry.pre = pre
        sent = pre if request.raw is None else request.raw  # the answer is still read against ``pre``
        full: WireMap | None = None
        if self._trims(request):
            full, sent = pre, self._trimmed(pre)
        item = request.input
        msg: WireMap
        if isinstance(item, Call):
            if self.codec == "msgpack":
                msg = {"op": "call", "function": item.function, "args": {"state": sent, **item.args}}
            else:
                msg = {"method": item.function, "params": {"state": sent, **item.args}}
            self._send(entry, msg, "call", sent if full is not None else pre)
            op = "call"
        else:
            ctx = request.context
            msg = {"state": sent, **ctx.to_wire()}
            if self.codec == "msgpack":
                msg.update(op="transition", event=item.to_wire(), with_invariants=request.with_invariants)
            else:
                msg.update(method="transition", event=item.payload)
            self._send(entry, msg, "transition", sent if full is not None else pre)
            op = "transition"
        if full is not None:
            self._wires[-1].full = full
            if self._appends(request):  # the end check sends the slot's last appending step again
                self._last_trimmed[request.slot] = _Trimmed(full, msg, op)
        elif self._appends(request):
            self._last_trimmed.pop(request.slot, None)
        if request.hint is not None:
            self._held[request.slot] = apply_delta(pre, request.hint)
        else:
            self._held.pop(request.slot, None)  # known again once this step is answered

    def _trims(self, request: Step) -> bool:
        """Send this step with its history trimmed? Not the raw first step, not every N-th one."""
        if self.history == "whole" or not self.domain.history_fields or request.raw is not None:
            self._since_full[request.slot] = 0
            return False
        count = self._since_full.get(request.slot, 0) + 1
        self._since_full[request.slot] = count
        if count < self.full_check_every:
            return True
        # Due: a port that rewrites old records when it appends shows it only on a step that appends,
        # so in lockstep (where the authority's delta is known) the whole state goes with the next
        # such step, or after another N steps without one.
        if self._appends(request) or count >= 2 * self.full_check_every:
            self._since_full[request.slot] = 0
            return False
        return True

    def _appends(self, request: Step) -> bool:
        """Does the step append to the history (as far as the authority's delta tells; True without)?"""
        hint = request.hint
        if hint is None:
            return True
        appended = hint.get("append") or {}
        return any(name in appended for name in self.domain.history_fields)

    def _trimmed(self, state: WireMap) -> WireMap:
        keep = 1 if self.history == "last" else 0
        out = dict(state)
        for name in self.domain.history_fields:
            value = state.get(name)
            if isinstance(value, list):
                out[name] = value[len(value) - keep :] if keep else []
        return out

    def _whole_delta(self, wire: _Wire, state: WireMap) -> WireMap:
        """The delta of an answer against the pre-state it was read against; for a trimmed request,
        against the whole pre-state, in time independent of the history's length unless the shadow
        rewrote what it was sent (then the field is set whole, and the engine shows the difference)."""
        delta = compute_delta(wire.state or {}, state)
        full = wire.full
        if full is None or not delta.get("set"):
            return delta
        sent = wire.state or {}
        fixed = dict(delta["set"])
        for name in self.domain.history_fields:
            if name in fixed and isinstance(fixed[name], list):
                before = full.get(name) or []
                kept = len(before) - len(sent.get(name) or [])
                fixed[name] = [*before[:kept], *fixed[name]]
        return {**delta, "set": fixed}

    def _known_state(self, slot: str) -> WireMap | None:
        while (
            slot not in self._held and self._wires and any(w.entry.request is not None for w in self._wires)
        ):
            if not self._pump(wait=True):
                break
        return self._held.get(slot)

    # -- receiving --------------------------------------------------------------------------------
    def flush(self) -> None:
        try:
            self.process.flush()
        except ProcessGone as exc:
            self._fatal("crash", f"shadow {exc}", exc.exit_code)

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        if self._deferred or (not self._started and self._entries):
            self._ensure_running(wait and bool(self._entries) and not self._entries[0].done)
        if wait and self._entries and not self._entries[0].done and self._started:
            self._pump(wait=True)
        elif self._wires:
            self._pump(wait=False)
        out = []
        while self._entries and self._entries[0].done:
            entry = self._entries.popleft()
            out.append((entry.ticket, entry.result))
        return out

    def pending(self) -> int:
        return len(self._entries)

    def _pump(self, wait: bool) -> bool:
        """Read what the shadow has said; with ``wait``, up to the head request's deadline."""
        try:
            if wait or self.process.buffered >= FLUSH_BYTES:
                self.process.flush()
            timeout = 0.0
            if wait and self._wires:
                timeout = max(0.0, self._wires[0].sent + self.deadline - time.monotonic())
            got = self.process.receive(timeout)
            if not got and wait and self._wires and time.monotonic() >= self._wires[0].sent + self.deadline:
                self._fatal("timeout", f"no answer within {self.deadline:g}s; killed", None)
                return True
            wires = self._wires
            for obj in got:
                if not wires:
                    raise FramingError(f"an answer nobody asked for: {str(obj)[:80]}")
                if type(obj) is bytes:  # msgpack: raw until we know it differs from what agrees
                    if obj == wires[0].expect:
                        self._agreed(wires.popleft())
                        continue
                    obj = self.process.framing.decode(obj)  # a bad object is blamed on its request
                self._answer(wires.popleft(), obj)
            broken = self.process.framing.broken
            if broken is not None:  # the answers before the garbage were kept; now blame the next one
                raise broken
            return bool(got)
        except ProcessGone as exc:
            self._fatal("crash", f"shadow {exc}", exc.exit_code)
        except FramingError as exc:
            self._fatal("protocol", str(exc), None)
        except _ProtocolViolation as exc:
            self._fatal("protocol", str(exc), None)
        return True

    def _answer(self, wire: _Wire, obj: Any) -> None:
        entry = wire.entry
        if not isinstance(obj, dict):
            raise _ProtocolViolation(f"answer is not a map: {str(obj)[:80]}")
        if self.codec == "msgpack":
            if obj.get("id") != wire.rid:
                raise _ProtocolViolation(f"answer id {obj.get('id')!r} where {wire.rid} was due")
            if "error" in obj:
                err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                self._part_failed(entry, wire, f"{err.get('kind', 'error')}: {err.get('message', '')}")
                return
            if not isinstance(obj.get("ok"), dict):
                raise _ProtocolViolation(f"answer to request {wire.rid} has neither 'ok' nor 'error'")
            body = obj["ok"]
        else:
            if "error" in obj:
                self._part_failed(entry, wire, f"request {wire.rid} ({wire.op}): {obj['error']}")
                return
            body = obj
        if wire.op not in ("open", "patch", "close", "get"):  # only real work proves the shadow healthy
            self._failures_in_a_row = 0
        entry.parts -= 1
        if entry.done:  # an earlier part failed; the rest only keep the stream in step
            return
        if entry.capture is not None:
            entry.capture.update(body)
        else:
            self._record(entry, wire, body)
        if entry.parts == 0 and not entry.done:
            self._resolve(entry, entry.result)

    def _agreed(self, wire: _Wire) -> None:
        """The answer is, byte for byte, the one that agrees with the authority: its outcome is the
        authority's own (no decoding, no field checks, nothing for the engine to compare)."""
        entry = wire.entry
        request = entry.request
        assert isinstance(request, Step) and request.expect is not None
        self._failures_in_a_row = 0
        entry.parts -= 1
        if entry.done:
            return
        if wire.op == "call":
            self.answered["call"] += 1
        else:
            self.answered["transition"] += 1
            self.answered["invariants"] += request.with_invariants
        entry.result = request.expect
        if entry.parts == 0:
            self._resolve(entry, entry.result)

    def _record(self, entry: _Entry, wire: _Wire, body: dict[str, Any]) -> None:
        request = entry.request
        op = wire.op
        if op in ("open", "patch", "close"):
            return
        assert isinstance(request, Step)
        if op == "step":
            actions, delta = _field(body, "actions", list, wire), _field(body, "delta", dict, wire)
            violations = _field(body, "violations", list, wire) if request.with_invariants else None
            self.answered["transition"] += 1
            self.answered["invariants"] += violations is not None
            entry.result = StepResult(actions, delta, violations)
        elif op == "call":
            self.answered["call"] += 1
            if "delta" in body:
                entry.result = StepResult([], _field(body, "delta", dict, wire), None)
            else:
                state = _field(body, "state", dict, wire)
                delta = self._whole_delta(wire, state)
                self._settle(entry, wire, state, delta)
                entry.result = StepResult([], delta, None)
        elif op == "transition":
            state = _field(body, "state", dict, wire)
            actions = [self._typed_action(a) for a in _field(body, "actions", list, wire)]
            self.answered["transition"] += 1
            violations = None
            if request.with_invariants:
                if self.codec == "msgpack":
                    violations = _field(body, "violations", list, wire)
                    self.answered["invariants"] += 1
                else:  # the JSON-lines server checks invariants in a request of its own
                    self._send(entry, {"method": "check_invariants", "state": state}, "check_invariants")
            delta = self._whole_delta(wire, state)
            self._settle(entry, wire, state, delta)
            entry.result = StepResult(actions, delta, violations)
        elif op == "check_invariants":
            self.answered["invariants"] += 1
            assert isinstance(entry.result, StepResult)
            entry.result = attrs.evolve(entry.result, violations=_field(body, "violations", list, wire))

    def _settle(self, entry: _Entry, wire: _Wire, state: WireMap, delta: WireMap) -> None:
        request = entry.request
        if not isinstance(request, Step):
            return
        post: WireMap | None = None
        if wire.full is not None:
            last = self._last_trimmed.get(request.slot)
            if last is not None and last.pre is wire.full:
                post = last.post = apply_delta(wire.full, delta)
        if request.hint is None and request.slot not in self._held:
            self._held[request.slot] = post if post is not None else state

    def _typed_action(self, action: Any) -> WireMap:
        if isinstance(action, dict) and "type" in action and "payload" in action:
            return action
        if not isinstance(action, dict):
            raise _ProtocolViolation(f"an action is not a map: {str(action)[:80]}")
        kind = self.domain.action_type_of(action)
        if kind is None:
            raise _ProtocolViolation(f"cannot tell the type of an action with keys {sorted(action)}")
        return {"type": kind, "payload": action}

    def _part_failed(self, entry: _Entry, wire: _Wire, message: str) -> None:
        self._failures_in_a_row = 0
        entry.parts -= 1
        if wire.op == "close" and isinstance(entry.request, Open):
            # the session being replaced was never opened (the shadow refused its state): gone already
            if entry.parts == 0 and not entry.done:
                self._resolve(entry, entry.result)
            return
        if not entry.done:
            self._resolve(entry, Failure("error", message, wire.rid, self.process.tail()))

    def _resolve(self, entry: _Entry, result: Result) -> None:
        entry.result = result
        entry.done = True

    def _fatal(self, kind: str, message: str, exit_code: int | None) -> None:
        """The process can no longer be trusted: fail the oldest request, mark the rest lost, kill."""
        head = next((w for w in self._wires), None)
        if kind == "timeout":
            # a server may hold the answers to cheap bookkeeping (open, patch) in its output buffer
            # while it computes the next step: a hang then shows first on them, but it is the step's
            work = next((w for w in self._wires if w.op not in ("open", "patch", "close", "get")), None)
            head = work or head
        tail = self.process.tail()
        code = self.process.stop(grace=0)
        if exit_code is None and kind == "crash":
            exit_code = code
        if kind == "crash":
            message = f"shadow exited with {describe_exit(exit_code)}"
        failure = Failure(kind, message, head.rid if head else None, tail, exit_code)
        blamed = head.entry if head is not None else None
        for entry in self._entries:
            if entry.done:
                continue
            if blamed is None and entry.parts > 0:
                blamed = entry
            if entry is blamed:
                self._resolve(entry, failure)
            else:
                self._resolve(entry, Failure(LOST, "in flight when the shadow failed"))
        self._wires.clear()
        self._deferred.clear()  # resolved as lost above
        self._session_ids.clear()
        self._held.clear()
        self._started = False
        self._failures_in_a_row += 1
        self._back_off()

    # -- synchronous operations (whole states) ----------------------------------------------------
    def _sync(self, message: WireMap, op: str, state: WireMap | None = None) -> dict[str, Any]:
        """Send one request behind whatever is in flight and wait for its answer."""
        self._ensure_running(wait=True)
        if self.dead is not None:
            raise ShadowFailureError(Failure("crash", f"shadow {self.dead}"))
        entry = _Entry(-1, None, capture={})
        self._entries.append(entry)
        try:
            self._send(entry, message, op, state)
            while not entry.done:
                self._pump(wait=True)
        except ProcessGone as exc:
            self._fatal("crash", f"shadow {exc}", exc.exit_code)
        finally:
            self._entries.remove(entry)
        if isinstance(entry.result, Failure):
            raise ShadowFailureError(entry.result)
        assert entry.capture is not None
        return entry.capture

    def transition(
        self, state: WireMap, event: Event, context: Context, with_invariants: bool = False
    ) -> Outcome:
        if self.codec == "msgpack":
            msg = {"op": "transition", "state": state, "event": event.to_wire(), **context.to_wire()}
            msg["with_invariants"] = with_invariants
        else:
            msg = {"method": "transition", "state": state, "event": event.payload, **context.to_wire()}
        body = self._sync(msg, "transition")
        actions = [self._typed_action(a) for a in body.get("actions", [])]
        violations = body.get("violations") if with_invariants and self.codec == "msgpack" else None
        if with_invariants and violations is None:
            violations = self.check_invariants(body["state"])
        return Outcome(body["state"], actions, violations)

    def check_invariants(self, state: WireMap) -> list[str]:
        key = "op" if self.codec == "msgpack" else "method"
        body = self._sync({key: "check_invariants", "state": state}, "check_invariants")
        return list(body.get("violations", []))

    def call(self, function: str, state: WireMap, args: Mapping[str, Any]) -> WireMap:
        if self.codec == "msgpack":
            if "call" not in self.ops:
                raise UnsupportedOp(f"the shadow offers no 'call' op (ops: {sorted(self.ops)})")
            body = self._sync({"op": "call", "function": function, "args": {"state": state, **args}}, "call")
        else:
            body = self._sync({"method": function, "params": {"state": state, **args}}, "call")
        result: WireMap = body["state"]
        return result

    @property
    def checks_history(self) -> bool:
        """True when the whole state is verified only now and then: the engine then asks ``get`` at the
        end, which sends the slot's last step again whole."""
        return not self.sessions and self.history != "whole" and bool(self.domain.history_fields)

    def describe_history(self) -> str:
        if self.sessions:
            return "held by the shadow (sessions)"
        if not self.checks_history:
            return "sent whole with every request"
        fields = ", ".join(self.domain.history_fields)
        how = "empty" if self.history == "trim" else "with its last record only"
        return (
            f"{fields} sent {how}; the whole state checked every {self.full_check_every:,} steps of a "
            "slot and at its end (--history whole to send it every time)"
        )

    def get(self, slot: str) -> WireMap:
        if not self.sessions:
            held = super().get(slot)
            last = self._last_trimmed.get(slot)
            if last is None or last.post is None:
                return held
            body = self._sync(_with_state(last.message, last.pre), last.op)
            whole = body.get("state")
            if not isinstance(whole, dict) or same_value(whole, last.post):
                return held  # the history changed nothing: the step was compared already
            # what the whole history changed in that step, carried forward to the slot's state now
            out = dict(held)
            for name, value in whole.items():
                before = last.post.get(name)
                if same_value(value, before):
                    continue
                now = held.get(name)
                if name in self.domain.history_fields and isinstance(value, list):
                    later = now[len(before) :] if isinstance(now, list) and isinstance(before, list) else []
                    out[name] = [*value, *later]
                else:
                    out[name] = value
            return out
        sid = self._session_ids.get(slot)
        if sid is None:
            raise ShadowFailureError(Failure("error", f"slot {slot!r} is not open on the shadow"))
        body = self._sync({"op": "get", "session": sid}, "get")
        state: WireMap = body["state"]
        return state


def _step_head(context_entries: int) -> bytes:
    """The start of a step request, a map of op, id, session, event, the context's entries (config and
    the domain's parameters) and with_invariants, up to the id's value."""
    entries = 5 + context_entries
    if entries < 16:
        size = bytes([0x80 | entries])
    else:
        size = (
            b"\xde" + entries.to_bytes(2, "big")
            if entries < 1 << 16
            else b"\xdf" + entries.to_bytes(4, "big")
        )
    return size + packb("op") + packb("step") + packb("id")


_SESSION_KEY = packb("session")
_EVENT_KEY = packb("event")
_WITH_INVARIANTS_TRUE = packb("with_invariants") + packb(True)
_WITH_INVARIANTS_FALSE = packb("with_invariants") + packb(False)


_ANSWER_HEAD = b"\x82" + packb("id")
_OK_KEY = packb("ok")


def _expected_answer(rid: int | None, ok: WireMap) -> bytes:
    """``{"id": rid, "ok": ok}`` as a server writes it (keys in the order PROTOCOL.md lists them, the
    smallest encodings msgpack allows). Only ever compared for equality: a server that orders its keys
    otherwise is still checked, field by field, just not by this shortcut."""
    return _ANSWER_HEAD + packb(rid) + _OK_KEY + packb(ok)


class _ProtocolViolation(Exception):
    pass


def _with_state(message: WireMap, state: WireMap) -> WireMap:
    """A copy of a whole-state request with another pre-state (a call keeps it among its arguments)."""
    for key in ("params", "args"):
        if isinstance(message.get(key), dict):
            return {**message, key: {**message[key], "state": state}}
    return {**message, "state": state}


def _field(body: dict[str, Any], name: str, kind: type, wire: _Wire) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        where = f"request {wire.rid}" if wire.rid is not None else f"a {wire.op} answer"
        raise _ProtocolViolation(f"{where}: result field {name!r} missing or not a {kind.__name__}")
    return value
