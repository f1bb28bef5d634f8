"""Serve any Reducer over PROTOCOL.md (msgpack) or the older JSON-lines transport, on stdio.

Useful to shadow a Python port, and to test shadowdiff's own client against a server whose answers
are known (the DOGE entry point is ``python -m shadowdiff_doge.pyserver``).
``--no-sessions`` hides the session ops (the whole-state fallback); ``--jsonl`` speaks the older
transport and writes whole-number floats as integers, as the real JSON-lines binary does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from shadowdiff.core.domain import Domain
from shadowdiff.core.reducer import Reducer, Step
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.values import Call, Context, Event
from shadowdiff.wire.codec import make_unpacker, packb
from shadowdiff.wire.format import PROTOCOL_VERSION

OPS = ["transition", "check_invariants", "call", "open", "step", "patch", "get", "close"]


class BadRequest(Exception):
    pass


def _need(request: dict[str, Any], key: str, kind: type) -> Any:
    value = request.get(key)
    if not isinstance(value, kind):
        raise BadRequest(f"{key!r} missing or not a {kind.__name__}")
    return value


# what a request holds besides its context (PROTOCOL.md and the JSON-lines transport)
_REQUEST_KEYS = frozenset({"op", "id", "session", "event", "state", "with_invariants", "method", "params"})


def _context(request: dict[str, Any], defaults: Mapping[str, Any] | None) -> Context:
    """The context of a step or transition request: its config and the domain's parameters, each at its
    default when the request leaves it out (``defaults``: ``Domain.context_defaults()``); without a
    domain, every other key of the request, as sent."""
    config = request.get("config") or {}
    if defaults is None:
        return Context(config, {k: v for k, v in request.items() if k not in _REQUEST_KEYS and k != "config"})
    return Context(config, {key: request.get(key, value) for key, value in defaults.items()})


class MsgpackServer:
    def __init__(self, reducer: Reducer, sessions: bool = True, domain: Domain | None = None) -> None:
        """``domain``: whose call parameters a step carries (default: whatever a request sends)."""
        self.reducer = reducer
        self.defaults = domain.context_defaults() if domain is not None else None
        self.sessions = sessions
        self.open_sessions: set[str] = set()

    def handle(self, request: Any) -> dict[str, Any]:
        rid = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict):
                raise BadRequest("a request must be a map")
            return {"id": rid, "ok": self._dispatch(request)}
        except BadRequest as exc:
            return {"id": rid, "error": {"kind": "bad_request", "message": str(exc)}}
        except _Unsupported as exc:
            return {"id": rid, "error": {"kind": "unsupported_op", "message": str(exc)}}
        except (ShadowdiffError, ValueError, TypeError, KeyError) as exc:
            return {"id": rid, "error": {"kind": "bad_request", "message": f"{type(exc).__name__}: {exc}"}}

    def _dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        r = self.reducer
        if op == "hello":
            ops = OPS if self.sessions else OPS[:3]
            return {
                "protocol": PROTOCOL_VERSION,
                "implementation": f"shadowdiff.serve({r.name})",
                "version": "1",
                "ops": ops,
            }
        if op == "transition":
            event = _need(req, "event", dict)
            outcome = r.transition(
                _need(req, "state", dict), Event(event.get("type", ""), event.get("payload") or {}),
                _context(req, self.defaults), bool(req.get("with_invariants")),
            )  # fmt: skip
            out: dict[str, Any] = {"state": outcome.state, "actions": outcome.actions}
            if outcome.violations is not None:
                out["violations"] = outcome.violations
            return out
        if op == "check_invariants":
            return {"violations": r.check_invariants(_need(req, "state", dict))}
        if op == "call":
            args = dict(_need(req, "args", dict))
            function = _need(req, "function", str)
            if "session" in req and "state" not in args:
                slot = self._slot(req)
                return {"delta": r.step(Step(slot, Call(function, args), Context(), False)).delta}
            return {
                "state": r.call(
                    function, _need(args, "state", dict), {k: v for k, v in args.items() if k != "state"}
                )
            }
        if op in ("open", "step", "patch", "get", "close") and self.sessions:
            if op == "open":
                slot = str(_need(req, "session", int))
                r.open(slot, _need(req, "state", dict))
                self.open_sessions.add(slot)
                return {}
            slot = self._slot(req)
            if op == "step":
                event = _need(req, "event", dict)
                wi = bool(req.get("with_invariants"))
                res = r.step(
                    Step(
                        slot,
                        Event(event.get("type", ""), event.get("payload") or {}),
                        _context(req, self.defaults),
                        wi,
                    )
                )
                return res.to_wire() if wi else {"actions": res.actions, "delta": res.delta}
            if op == "patch":
                r.patch(slot, _need(req, "delta", dict))
                return {}
            if op == "get":
                return {"state": r.get(slot)}
            r.close_slot(slot)
            self.open_sessions.discard(slot)
            return {}
        raise _Unsupported(f"unknown op {op!r}")

    def _slot(self, req: dict[str, Any]) -> str:
        slot = str(_need(req, "session", int))
        if slot not in self.open_sessions:
            raise BadRequest(f"session {slot} is not open")
        return slot


class _Unsupported(Exception):
    pass


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(v) for v in value]
    return value


class JsonLinesServer:
    """DOGE_REDUCER.md section 7: bare payloads in, bare actions out, ``{"error"}`` on a bad request."""

    def __init__(self, reducer: Reducer, domain: Domain) -> None:
        self.reducer = reducer
        self.domain = domain
        self.defaults = domain.context_defaults()

    def handle(self, req: Any) -> dict[str, Any]:
        try:
            if not isinstance(req, dict):
                raise BadRequest("a request must be an object")
            method = req.get("method")
            if method == "transition":
                payload = _need(req, "event", dict)
                kind = self.domain.event_type_of(payload)
                if kind is None:
                    raise BadRequest(f"cannot tell the event type from keys {sorted(payload)}")
                out = self.reducer.transition(
                    _need(req, "state", dict), Event(kind, payload), _context(req, self.defaults)
                )
                return {"state": out.state, "actions": [a["payload"] for a in out.actions]}
            if method == "check_invariants":
                return {"violations": self.reducer.check_invariants(_need(req, "state", dict))}
            if isinstance(method, str) and method in self.domain.call_functions:
                params = dict(req.get("params") or {k: v for k, v in req.items() if k != "method"})
                state = _need(params, "state", dict)
                return {
                    "state": self.reducer.call(
                        method, state, {k: v for k, v in params.items() if k != "state"}
                    )
                }
            raise BadRequest(f"unknown method {method!r}")
        except (BadRequest, ShadowdiffError, ValueError, TypeError, KeyError) as exc:
            return {"error": str(exc)}


def serve_msgpack(server: MsgpackServer, stdin: BinaryIO, stdout: BinaryIO) -> int:
    unpacker = make_unpacker()
    while True:
        chunk = stdin.read1(1 << 16) if hasattr(stdin, "read1") else stdin.read(1 << 16)
        if not chunk:
            return 0
        unpacker.feed(chunk)
        try:
            replies = [packb(server.handle(req)) for req in unpacker]
        except ValueError as exc:
            print(f"shadowdiff.shadow.serve: input is not msgpack: {exc}", file=sys.stderr)
            return 3
        stdout.write(b"".join(replies))
        stdout.flush()


def serve_jsonl(server: JsonLinesServer, lines: Iterator[bytes], write: Callable[[bytes], Any]) -> int:
    for line in lines:
        if not line.strip():
            continue
        try:
            reply = server.handle(json.loads(line))
        except ValueError as exc:
            reply = {"error": f"bad JSON: {exc}"}
        write(json.dumps(_whole_floats_as_ints(reply), separators=(",", ":")).encode() + b"\n")
    return 0
