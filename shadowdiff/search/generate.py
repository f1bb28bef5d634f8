"""The generation driver: Hypothesis-driven, state-guided walks over a domain's strategies.

A domain plugs in a ``Strategies``: an initial-scenario strategy (context and initial state), and
``next_inputs`` choosing the next input(s) from the *current authoritative state*. The driver keeps an
in-process authoritative session while it generates, so every choice is made knowing where the slot
really is (which orders are open, which timers are near), not by blind sampling. The driver knows
nothing of any domain.

Searching is deterministic for a seed: Hypothesis runs with ``@seed``, no example database, no
deadline and generation only (shrinking is ours, ``shrink.py``, because it understands scenarios).
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

from shadowdiff.core.reducer import Reducer, Step
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.values import Context, Input, Scenario, WireMap

T = TypeVar("T")


class Draw(Protocol):
    """Hypothesis's ``draw`` (from ``st.data()`` or ``@st.composite``)."""

    def __call__(self, strategy: st.SearchStrategy[T], label: Any = None) -> T: ...


class Strategies(ABC):
    """What a domain provides to generate scenarios. Subclass and implement both methods.

    ``initial`` yields a scenario whose inputs are usually empty (its context and initial state are
    what matter; any inputs it carries are kept and stepped first). ``next_inputs`` returns the next
    input(s) given the current authoritative state: one input usually, two for a deliberate
    duplicate, none to end the walk early.
    """

    @abstractmethod
    def initial(self) -> st.SearchStrategy[Scenario]:
        """Initial scenarios: context, initial state (possibly raw, as a saved file holds it)."""

    @abstractmethod
    def next_inputs(self, state: WireMap, context: Context, draw: Draw) -> list[Input]:
        """The next input(s), chosen from ``state`` (the authoritative state, in wire form)."""


_slots = itertools.count()


def walk(strategies: Strategies, authoritative: Reducer, draw: Draw, max_steps: int) -> Scenario | None:
    """Draw one scenario by walking the authoritative reducer ``max_steps`` inputs at most.

    Inputs the authority rejects (bad input on its side) are left out, never kept; an initial state it
    cannot load gives None (that is bad input, not a case).
    """
    base = draw(strategies.initial(), label="initial")
    slot = f"generate{next(_slots)}"
    try:
        authoritative.open(slot, base.initial_state)
    except ShadowdiffError:
        return None
    kept: list[Input] = []
    try:
        for item in base.inputs:
            if _step(authoritative, slot, item, base.context):
                kept.append(item)
        steps = draw(st.integers(0, max_steps), label="steps") if max_steps > 0 else 0
        while len(kept) < steps:
            state = authoritative.get(slot)
            chosen = strategies.next_inputs(state, base.context, draw)
            if not chosen:
                break
            for item in chosen[: steps - len(kept)]:
                if _step(authoritative, slot, item, base.context):
                    kept.append(item)
    finally:
        authoritative.close_slot(slot)
    return attrs.evolve(base, inputs=tuple(kept))


def _step(authoritative: Reducer, slot: str, item: Input, context: Context) -> bool:
    try:
        authoritative.step(Step(slot, item, context, with_invariants=False))
    except (ShadowdiffError, ArithmeticError, TypeError, ValueError):
        return False
    return True


def scenarios(
    strategies: Strategies, authoritative: Reducer, max_steps: int = 20
) -> st.SearchStrategy[Scenario]:
    """Walked scenarios as a Hypothesis strategy (for users' own ``@given`` tests)."""

    @st.composite
    def build(draw: Any) -> Scenario:
        found = walk(strategies, authoritative, draw, max_steps)
        if found is None:
            from hypothesis import reject

            reject()
        assert found is not None
        return found

    return build()


@attrs.frozen
class SearchOptions:
    seed: int = 0
    examples: int = 200
    max_steps: int = 20
    time_budget: float | None = None


@attrs.frozen
class Example(Generic[T]):
    """One generated scenario that the check flagged, with where in the search it came."""

    index: int
    scenario: Scenario
    finding: T
    elapsed_s: float


@attrs.frozen
class SearchStats:
    examples: int
    elapsed_s: float
    stopped: str  # "examples", "budget" or "found"


class _Stop(Exception):
    pass


def search(
    strategies: Strategies,
    authoritative: Reducer,
    check: Callable[[Scenario], T | None],
    options: SearchOptions,
    on_found: Callable[[Example[T]], bool],
) -> SearchStats:
    """Generate scenarios and ``check`` each; ``on_found`` gets every flagged one and says whether to
    go on (True) or stop (False). Deterministic for ``options.seed`` until the time budget runs out."""
    started = time.perf_counter()
    state: dict[str, Any] = {"n": 0, "stopped": "examples"}

    def stop(why: str) -> None:
        state["stopped"] = why
        raise _Stop(why)

    @seed(options.seed)
    @settings(
        database=None,
        deadline=None,
        derandomize=False,
        max_examples=options.examples,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        if state["stopped"] != "examples":
            stop(state["stopped"])
        elapsed = time.perf_counter() - started
        if options.time_budget is not None and elapsed > options.time_budget:
            stop("budget")
        scenario = walk(strategies, authoritative, data.draw, options.max_steps)
        if scenario is None:
            return
        index = state["n"]
        state["n"] = index + 1
        finding = check(scenario)
        if finding is not None:
            example = Example(index, scenario, finding, time.perf_counter() - started)
            if not on_found(example):
                stop("found")

    try:
        run()
    except _Stop:
        pass
    except Exception:
        # Hypothesis replays the stopping example to report it; that replay stops before drawing and
        # Hypothesis calls the strategy flaky. We stopped on purpose; any other error is real.
        if state["stopped"] == "examples":
            raise
    return SearchStats(int(state["n"]), time.perf_counter() - started, str(state["stopped"]))
