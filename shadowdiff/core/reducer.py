"""The Reducer contract: the one interface the engine drives, whatever runs behind it.

A reducer computes ``transition(state, input, context) -> (state, actions)`` and
``check_invariants(state) -> [violation]`` over wire values. Because a state's history only grows, the
engine drives reducers as *sessions*: ``open`` a slot with a state, ``step`` it with inputs and get back
actions and a canonical delta (PROTOCOL.md), ``patch`` it when the state changed outside the reducer,
``get`` it whole only when a person needs to see it. A reducer that cannot hold state inherits the
client-held sessions below, which keep each slot's state here and send it whole.

Requests can be pipelined: ``submit`` returns a ticket at once and ``poll`` hands back results in
ticket order. A reducer that computes synchronously (in-process) answers at ``submit`` time; a
subprocess answers when its process does. A shadow that fails does not raise out of ``poll``: its
failure is a result value (``Failure``), because nothing the shadow does may stop a replay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.values import Call, Context, Event, Failure, Input, Outcome, StepResult, WireMap
from shadowdiff.wire.codec import apply_delta, compute_delta


@attrs.frozen
class Open:
    slot: str
    state: WireMap


@attrs.frozen
class Step:
    """One input for a slot. ``hint`` is the authoritative delta of this step in lockstep mode: the state
    the slot must hold afterwards, for reducers that keep the state client-side and pipeline.
    ``expect`` is the authoritative outcome of this step when the caller already has it: a reducer whose
    own answer encodes to the very same bytes may return ``expect`` itself instead of decoding its
    answer (byte equality implies equality under every rule of the diff, so nothing is lost)."""

    slot: str
    input: Input
    context: Context
    with_invariants: bool = True
    hint: WireMap | None = None
    expect: StepResult | None = None
    raw: WireMap | None = None
    """The pre-state exactly as the log or scenario holds it (the first step of a slot after a snapshot,
    over a whole-state transport): sent instead of the held state, so the shadow's own lenient loading is
    exercised as the bot's parity harness does; the answer is still taken relative to the held (the
    authority's normalised) state, so every field the shadow loaded differently shows in the delta."""


@attrs.frozen
class Patch:
    slot: str
    delta: WireMap


@attrs.frozen
class Close:
    slot: str


Request: TypeAlias = Open | Step | Patch | Close
Result: TypeAlias = StepResult | Failure | None


class ShadowFailureError(ShadowdiffError):
    """Raised by synchronous calls when the reducer failed; carries the ``Failure`` value."""

    exit_code = 1

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message, f"request {failure.request_id}" if failure.request_id else None)


class UnsupportedOp(ShadowdiffError):
    """The reducer does not offer that operation (e.g. a ``call`` function it does not know)."""


class Reducer(ABC):
    """Base class of every reducer kind. Subclasses implement ``transition`` and ``check_invariants``
    (and ``call`` if the domain has calls); sessions and pipelining come for free, or are overridden
    by reducers that hold state elsewhere (a subprocess speaking PROTOCOL.md sessions).
    """

    name = "reducer"
    dead: str | None = None
    """Why the reducer gave up for good (e.g. too many restarts in a row); None while it works."""
    sessions = False
    """True when the state is held by the reducer itself (server-side sessions)."""

    def __init__(self) -> None:
        self._held: dict[str, WireMap] = {}
        self._ready: deque[tuple[int, Result]] = deque()
        self._next_ticket = 0
        self.answered: dict[str, int] = {"transition": 0, "invariants": 0, "call": 0}

    # -- stateless operations -------------------------------------------------------------------
    @abstractmethod
    def transition(
        self, state: WireMap, event: Event, context: Context, with_invariants: bool = False
    ) -> Outcome:
        """The next state, the actions, and (when asked) the violations of the next state."""

    @abstractmethod
    def check_invariants(self, state: WireMap) -> list[str]:
        """The state's invariant violations, in the domain's order; empty when healthy."""

    def call(self, function: str, state: WireMap, args: Mapping[str, Any]) -> WireMap:
        """A domain's other pure operation; returns the new state."""
        raise UnsupportedOp(f"{self.name} offers no call {function!r}")

    def normalize(self, state: WireMap) -> WireMap:
        """The state as this reducer reads it (its lenient loading, then back to wire form)."""
        return state

    # -- sessions (client-held by default) -------------------------------------------------------
    def open(self, slot: str, state: WireMap) -> None:
        self._held[slot] = self.normalize(state)

    def step(self, request: Step) -> StepResult:
        pre = self._slot_state(request.slot)
        sent = pre if request.raw is None else request.raw
        item = request.input
        if isinstance(item, Call):
            post = self.call(item.function, sent, item.args)
            self.answered["call"] += 1
            result = StepResult([], compute_delta(pre, post), None)
        else:
            outcome = self.transition(sent, item, request.context, request.with_invariants)
            self.answered["transition"] += 1
            if request.with_invariants:
                self.answered["invariants"] += 1
            post = outcome.state
            result = StepResult(outcome.actions, compute_delta(pre, post), outcome.violations)
        self._held[request.slot] = apply_delta(pre, request.hint) if request.hint is not None else post
        return result

    def patch(self, slot: str, delta: WireMap) -> None:
        self._held[slot] = apply_delta(self._slot_state(slot), delta)

    def get(self, slot: str) -> WireMap:
        return self._slot_state(slot)

    def close_slot(self, slot: str) -> None:
        self._held.pop(slot, None)

    def _slot_state(self, slot: str) -> WireMap:
        try:
            return self._held[slot]
        except KeyError:
            raise ShadowdiffError(f"slot {slot!r} is not open") from None

    # -- pipelining ------------------------------------------------------------------------------
    def submit(self, request: Request) -> int:
        """Queue a request; its result comes back from ``poll`` in ticket order."""
        ticket = self._next_ticket
        self._next_ticket += 1
        result: Result = None
        try:
            if isinstance(request, Step):
                result = self.step(request)
            elif isinstance(request, Open):
                self.open(request.slot, request.state)
            elif isinstance(request, Patch):
                self.patch(request.slot, request.delta)
            else:
                self.close_slot(request.slot)
        except ShadowFailureError as exc:
            result = exc.failure
        self._ready.append((ticket, result))
        return ticket

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        """Results that are ready, in ticket order. With ``wait``, block until at least one is (if any
        is outstanding)."""
        out = list(self._ready)
        self._ready.clear()
        return out

    def pending(self) -> int:
        return len(self._ready)

    def flush(self) -> None:
        """Send whatever is buffered (a no-op for reducers that answer at once)."""

    def interrupt(self) -> None:
        """The run is being interrupted: from now on, waits for answers are short (safe to call from a
        signal handler: it only sets a flag). A no-op for reducers that answer at once."""

    @property
    def restarts(self) -> int:
        return 0

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release processes and files; safe to call twice."""

    def __enter__(self) -> Reducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
