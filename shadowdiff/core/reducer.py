"""The two seams the engine drives: a pure ``Reducer`` and an asynchronous ``Shadow``.

A ``Reducer`` computes ``transition(state, input, context) -> (state, actions)`` and
``check_invariants(state) -> [violation]`` over wire values, synchronously. Because a state's history
only grows, it is driven as *sessions*: ``open`` a slot with a state, ``step`` it with inputs and get back
actions and a canonical delta (PROTOCOL.md), ``patch`` it when the state changed outside the reducer,
``get`` it whole only when a person needs to see it, ``close_slot`` it. A reducer that cannot hold state
inherits the client-held sessions below, which keep each slot's state here and send it whole. The
authoritative side of a replay is a ``Reducer``.

A ``Shadow`` is the side under test, which may run elsewhere and may misbehave: ``submit`` returns a
ticket at once and ``poll`` hands back results in ticket order; whether it gave up for good (``dead``),
how often it was restarted (``restarts``) and whether it holds the state itself (``sessions``) are
explicit properties, abstract so that a wrapper must say what it forwards. A shadow that fails does not
raise out of ``poll``: its failure is a result value (``Failure``), because nothing the shadow does may
stop a replay. ``InProcessShadow`` turns any ``Reducer`` into a ``Shadow`` (it answers at ``submit``
time); ``ForwardingShadow`` is the base of wrappers that observe a shadow and change nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from typing import Any, Self, TypeAlias

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
    """A pure reducer. Subclasses implement ``transition`` and ``check_invariants`` (and ``call`` if the
    domain has calls); client-held sessions come for free, or are overridden by reducers that hold
    state elsewhere (a module's own state objects, a subprocess speaking PROTOCOL.md sessions)."""

    name = "reducer"

    def __init__(self) -> None:
        self._held: dict[str, WireMap] = {}
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

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release processes and files; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_from(reducer: Reducer, state: WireMap, request: Step) -> StepResult:
    """One step of ``request`` from the whole ``state``, with no session: ``transition`` or ``call``."""
    item = request.input
    if isinstance(item, Call):
        return StepResult([], compute_delta(state, reducer.call(item.function, state, item.args)), None)
    outcome = reducer.transition(state, item, request.context, request.with_invariants)
    return StepResult(outcome.actions, compute_delta(state, outcome.state), outcome.violations)


class Shadow(ABC):
    """The side under test, asynchronous: what the engine drives, and all a wrapper must forward.

    A test double implements ``submit``, ``poll``, ``get`` and the three properties; the rest have
    defaults for a shadow that answers at once and holds no processes."""

    @abstractmethod
    def submit(self, request: Request) -> int:
        """Queue a request; its result comes back from ``poll`` in ticket order. Never raises for what
        the shadow does (a failure is a result), and never waits longer than sending takes."""

    @abstractmethod
    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        """Results that are ready, in ticket order. With ``wait``, block until at least one is (if any
        is outstanding), no longer than the shadow's deadline."""

    @abstractmethod
    def get(self, slot: str) -> WireMap:
        """A slot's whole state as the shadow holds it, behind what is in flight (synchronous); raises
        ``ShadowFailureError`` if the shadow cannot say."""

    @property
    @abstractmethod
    def dead(self) -> str | None:
        """Why the shadow gave up for good (e.g. too many restarts in a row); None while it works."""

    @property
    @abstractmethod
    def restarts(self) -> int:
        """How many times the shadow was started again after a failure."""

    @property
    @abstractmethod
    def sessions(self) -> bool:
        """True when the state is held by the shadow itself (server-side sessions)."""

    @property
    def checks_history(self) -> bool:
        """True when whole states are sent with their history trimmed: the engine then verifies each
        slot's state (``get``) at the end even without sessions."""
        return False

    def pending(self) -> int:
        """Requests submitted whose results ``poll`` has not handed back yet."""
        return 0

    def flush(self) -> None:
        """Send whatever is buffered (a no-op for shadows that answer at once)."""

    def interrupt(self) -> None:
        """The run is being interrupted: from now on, waits for answers are short (safe to call from a
        signal handler: it only sets a flag)."""

    def outcome(self, state: WireMap, request: Step) -> StepResult:
        """The answer to ``request`` from the whole ``state`` (no session), synchronously: the engine
        asks it to tell a loading difference from a transition difference. Raises ``ShadowdiffError``
        when the shadow cannot say."""
        raise UnsupportedOp(f"{self.describe()} answers no whole-state step")

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:
        """Release processes and files; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessShadow(Shadow):
    """A pure ``Reducer`` as a ``Shadow``: each request is answered when it is submitted."""

    def __init__(self, reducer: Reducer) -> None:
        self.reducer = reducer
        self._ready: deque[tuple[int, Result]] = deque()
        self._next_ticket = 0

    def submit(self, request: Request) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        result: Result = None
        reducer = self.reducer
        try:
            if isinstance(request, Step):
                result = reducer.step(request)
            elif isinstance(request, Open):
                reducer.open(request.slot, request.state)
            elif isinstance(request, Patch):
                reducer.patch(request.slot, request.delta)
            else:
                reducer.close_slot(request.slot)
        except ShadowFailureError as exc:
            result = exc.failure
        self._ready.append((ticket, result))
        return ticket

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        out = list(self._ready)
        self._ready.clear()
        return out

    def get(self, slot: str) -> WireMap:
        return self.reducer.get(slot)

    @property
    def dead(self) -> str | None:
        return None

    @property
    def restarts(self) -> int:
        return 0

    @property
    def sessions(self) -> bool:
        return False

    def pending(self) -> int:
        return len(self._ready)

    def outcome(self, state: WireMap, request: Step) -> StepResult:
        return step_from(self.reducer, state, request)

    def describe(self) -> str:
        return self.reducer.describe()

    def close(self) -> None:
        self.reducer.close()


class ForwardingShadow(Shadow):
    """Forwards every member of ``Shadow`` to ``inner``: a wrapper overrides only what it observes."""

    def __init__(self, inner: Shadow) -> None:
        self.inner = inner

    def submit(self, request: Request) -> int:
        return self.inner.submit(request)

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        return self.inner.poll(wait)

    def get(self, slot: str) -> WireMap:
        return self.inner.get(slot)

    @property
    def dead(self) -> str | None:
        return self.inner.dead

    @property
    def restarts(self) -> int:
        return self.inner.restarts

    @property
    def sessions(self) -> bool:
        return self.inner.sessions

    @property
    def checks_history(self) -> bool:
        return self.inner.checks_history

    def pending(self) -> int:
        return self.inner.pending()

    def flush(self) -> None:
        self.inner.flush()

    def interrupt(self) -> None:
        self.inner.interrupt()

    def outcome(self, state: WireMap, request: Step) -> StepResult:
        return self.inner.outcome(state, request)

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


class ReducerShadow(Reducer, Shadow):
    """Both seams in one object: a reducer that can be driven synchronously or pipelined (a subprocess)."""


def as_shadow(side: Shadow | Reducer) -> Shadow:
    """A shadow as it is, a pure reducer through ``InProcessShadow``."""
    return side if isinstance(side, Shadow) else InProcessShadow(side)
