"""Frozen value types shared by every part of shadowdiff.

Everything here is a plain value over wire data (maps, lists, str, int, float, bool, None): no
processes, no files. A domain's own classes never appear; adapters convert at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs

Wire: TypeAlias = Any
"""A plain wire value: dict, list, str, int, float, bool or None."""

WireMap: TypeAlias = dict[str, Any]


@attrs.frozen
class Event:
    """An input to ``transition``: a type name and its payload map."""

    type: str
    payload: WireMap

    def to_wire(self) -> WireMap:
        return {"type": self.type, "payload": self.payload}


@attrs.frozen
class Call:
    """A domain's other pure operation on a slot's state (e.g. ``apply_order_regime_at_entry``)."""

    function: str
    args: WireMap

    @property
    def type(self) -> str:
        return self.function

    def to_wire(self) -> WireMap:
        return {"call": self.function, "args": self.args}


Input: TypeAlias = Event | Call


def input_from_wire(value: Any) -> Input:
    """Read an event or a call from its wire form; raises ``ValueError`` naming what is wrong."""
    if not isinstance(value, Mapping):
        raise ValueError(f"an event must be a map, not {type(value).__name__}")
    if "call" in value:
        function, args = value["call"], value.get("args", {})
        if not isinstance(function, str) or not isinstance(args, Mapping):
            raise ValueError("a call needs 'call' (str) and 'args' (map)")
        return Call(function, dict(args))
    kind, payload = value.get("type"), value.get("payload")
    if not isinstance(kind, str) or not isinstance(payload, Mapping):
        raise ValueError("an event needs 'type' (str) and 'payload' (map)")
    return Event(kind, dict(payload))


@attrs.frozen(init=False)
class Context:
    """What a step needs besides state and event: the config and the domain's other call parameters.

    ``params`` maps the names of those parameters to their values, in wire order; the domain declares
    the names and their defaults (``Domain.context_defaults()``, ``Domain.blank_context()``), so a context
    read from a corpus carries every one of them. Built as ``Context(config, params)``; the keyword form
    of the parameters (``Context(config, name=value)``) is refused with a TypeError naming them.
    """

    config: WireMap
    params: WireMap

    def __init__(self, config: WireMap | None = None, params: WireMap | None = None, **named: Any) -> None:
        if named:
            raise TypeError(
                f"Context takes (config, params): pass {', '.join(map(repr, named))} in params, e.g. "
                f"Context(config, {{{', '.join(f'{k!r}: ...' for k in named)}}})"
            )
        self.__attrs_init__({} if config is None else config, {} if params is None else params)

    def to_wire(self) -> WireMap:
        return {"config": self.config, **self.params}

    def updated(self, changes: Mapping[str, Any]) -> Context:
        """This context with ``config`` and the parameters it has replaced where ``changes`` has them
        (other keys are not this domain's: left out)."""
        params = self.params
        if any(key in changes for key in params):
            params = {key: changes.get(key, value) for key, value in params.items()}
        return Context(dict(changes["config"]) if "config" in changes else self.config, params)

    @classmethod
    def from_wire(cls, value: Mapping[str, Any]) -> Context:
        """A context as ``to_wire`` wrote it: ``config`` and every other key a parameter, in order."""
        config = dict(value["config"]) if "config" in value else {}
        return cls(config, {key: item for key, item in value.items() if key != "config"})


@attrs.frozen
class StepResult:
    """How one step changed a slot: the actions, the state's delta (PROTOCOL.md), the violations.

    ``violations`` is None when they were not asked for.
    """

    actions: list[WireMap]
    delta: WireMap
    violations: list[str] | None = None

    def to_wire(self) -> WireMap:
        out: WireMap = {"actions": self.actions, "delta": self.delta}  # PROTOCOL.md's order
        if self.violations is not None:
            out["violations"] = self.violations
        return out


@attrs.frozen
class Outcome:
    """A whole-state transition result."""

    state: WireMap
    actions: list[WireMap]
    violations: list[str] | None = None


@attrs.frozen
class Scenario:
    """A replayable case: one slot, a context, an initial state and a list of inputs.

    This is the bot's own fixture format (DOGE_REDUCER.md section 6); ``expected`` and ``meta`` are
    carried through untouched.
    """

    name: str
    context: Context
    initial_state: WireMap
    inputs: tuple[Input, ...]
    expected: WireMap | None = None
    meta: WireMap = attrs.field(factory=dict)

    def to_wire(self) -> WireMap:
        out: WireMap = {
            "name": self.name,
            "config": self.context.config,
            "initial_state": self.initial_state,
            **self.context.params,
            "events": [item.to_wire() for item in self.inputs],
        }
        if self.expected is not None:
            out["expected"] = self.expected
        if self.meta:
            out["shadowdiff"] = self.meta
        return out


@attrs.frozen
class Difference:
    """One place where the two sides disagree: a path and both values."""

    path: str
    authoritative: Any
    shadow: Any
    rule: str = "exact"

    def to_wire(self) -> WireMap:
        return {
            "path": self.path,
            "authoritative": self.authoritative,
            "shadow": self.shadow,
            "rule": self.rule,
        }


DIVERGENCE_KINDS = ("transition.state", "transition.actions", "invariant", "load")
FAILURE_KINDS = ("crash", "timeout", "protocol", "error")


@attrs.frozen
class Divergence:
    """The two sides computed different things from the same input. A value, never an exception."""

    kind: str
    signature: str
    step: int
    slot: str
    input: Input | None
    differences: tuple[Difference, ...]
    seq: int | None = None
    # every distinct signature of the step's differences, the first being ``signature``
    signatures: tuple[str, ...] = attrs.field(
        default=attrs.Factory(lambda self: (self.signature,), takes_self=True)
    )

    @property
    def event_type(self) -> str:
        return self.input.type if self.input is not None else "open"

    def to_wire(self) -> WireMap:
        return {
            "kind": self.kind,
            "signature": self.signature,
            "signatures": list(self.signatures),
            "step": self.step,
            "seq": self.seq,
            "slot": self.slot,
            "event": self.input.to_wire() if self.input is not None else None,
            "event_type": self.event_type,
            "differences": [d.to_wire() for d in self.differences],
        }


@attrs.frozen
class Failure:
    """The shadow did not answer properly: it crashed, hung, spoke garbage or replied with an error."""

    kind: str
    message: str
    request_id: int | None = None
    stderr_tail: tuple[str, ...] = ()
    exit_code: int | None = None

    def to_wire(self) -> WireMap:
        return {
            "kind": self.kind,
            "request_id": self.request_id,
            "message": self.message,
            "stderr_tail": list(self.stderr_tail),
            "exit_code": self.exit_code,
        }


@attrs.frozen
class FailureAt:
    """A failure placed in a replay: which step of which slot, on which input."""

    failure: Failure
    step: int
    slot: str
    input: Input | None
    seq: int | None = None

    @property
    def kind(self) -> str:
        return self.failure.kind

    @property
    def event_type(self) -> str:
        return self.input.type if self.input is not None else "open"

    @property
    def signature(self) -> str:
        return f"{self.failure.kind}|{self.event_type}"

    def to_wire(self) -> WireMap:
        out = self.failure.to_wire()
        out.update(
            signature=self.signature,
            step=self.step,
            seq=self.seq,
            slot=self.slot,
            event_type=self.event_type,
            event=self.input.to_wire() if self.input is not None else None,
        )
        return out


def as_list(value: Sequence[Any] | None) -> list[Any]:
    return list(value) if value is not None else []
