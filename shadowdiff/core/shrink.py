"""The shrinker: delta debugging and simplification of a failing scenario, by deterministic passes.

The base (``Shrinker``) follows Hypothesis's design: one ``consider(candidate)`` that remembers every
candidate it tried (by canonical bytes) and keeps the best one that is still interesting, and an
ordered list of passes run again and again until a whole round improves nothing. "Better" is a total
order (``key``): fewer inputs first, then fewer list items in the state, then shorter canonical bytes,
then the bytes themselves, so shrinking never grows a case and always terminates.

``shrink_scenario`` applies it to scenarios with the predicate "the same signature still occurs",
which works for any failing scenario, generated or cut from a log. Passes, in order:

1. cut (lockstep only): the one divergent step, from the authoritative pre-state of that step;
2. ddmin with complements over the inputs (adaptive chunks);
3. the initial state: drop list items (orders, recoveries, history), then the domain's own
   candidates (fields reset to defaults);
4. the context: no per-trade sizes, config keys left out, a rounder order size;
5. values: rounder numbers and smaller ints in the inputs and the state.

Nothing here does I/O: the predicate and the pre-state come in as functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

from shadowdiff.model.values import Call, Event, Input, Scenario, WireMap

T = TypeVar("T")


class Shrinker(Generic[T]):
    """Keeps the best interesting candidate; passes propose, ``consider`` decides."""

    def __init__(
        self,
        initial: T,
        predicate: Callable[[T], bool],
        key: Callable[[T], Any],
        encode: Callable[[T], bytes],
        passes: Sequence[Callable[[Shrinker[T]], None]] = (),
        time_budget: float | None = None,
    ) -> None:
        self.best = initial
        self.predicate = predicate
        self.key = key
        self.encode = encode
        self.passes = list(passes)
        self.tried: dict[bytes, bool] = {encode(initial): True}
        self.calls = 0
        self.improvements = 0
        self._deadline = None if time_budget is None else time.perf_counter() + time_budget

    @property
    def out_of_time(self) -> bool:
        return self._deadline is not None and time.perf_counter() > self._deadline

    def consider(self, candidate: T) -> bool:
        """True when ``candidate`` is better than the best and still interesting (it becomes the best)."""
        if self.key(candidate) >= self.key(self.best):
            return False
        blob = self.encode(candidate)
        known = self.tried.get(blob)
        if known is None:
            if self.out_of_time:
                return False
            self.calls += 1
            known = self.tried[blob] = bool(self.predicate(candidate))
        if known and self.key(candidate) < self.key(self.best):
            self.best = candidate
            self.improvements += 1
            return True
        return False

    def run(self) -> T:
        while not self.out_of_time:
            before = self.improvements
            for shrink_pass in self.passes:
                if self.out_of_time:
                    break
                shrink_pass(self)
            if self.improvements == before:
                break
        return self.best


def ddmin(items: Sequence[T], test: Callable[[list[T]], bool]) -> list[T]:
    """Zeller's ddmin with complements: a 1-minimal sublist of ``items`` still passing ``test``
    (``items`` itself is assumed to pass). Tries the empty list first."""
    current = list(items)
    if not current or test([]):
        return []
    n = 2
    while len(current) >= 2:
        size = math.ceil(len(current) / n)
        chunks = [current[i : i + size] for i in range(0, len(current), size)]
        for chunk in chunks:
            if test(chunk):
                current, n = chunk, 2
                break
        else:
            for i in range(len(chunks)):
                complement = [x for j, c in enumerate(chunks) if j != i for x in c]
                if test(complement):
                    current, n = complement, max(n - 1, 2)
                    break
            else:
                if n >= len(current):
                    break
                n = min(len(current), 2 * n)
    return current


# -- scenarios ------------------------------------------------------------------------------------


def canonical(scenario: Scenario) -> bytes:
    body = {
        "context": scenario.context.to_wire(),
        "initial_state": scenario.initial_state,
        "events": [item.to_wire() for item in scenario.inputs],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=repr).encode("utf-8")


def list_items(value: Any) -> int:
    if isinstance(value, dict):
        return sum(list_items(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(list_items(v) for v in value)
    return 0


def scenario_key(scenario: Scenario) -> tuple[int, int, int, bytes]:
    blob = canonical(scenario)
    return (len(scenario.inputs), list_items(scenario.initial_state), len(blob), blob)


class ShrinkHooks:
    """What a domain may add: its own state candidates (e.g. fields reset to their defaults)."""

    def state_candidates(self, state: WireMap) -> Iterable[WireMap]:
        return ()


class Oracle(Protocol):
    """Runs scenarios: which signatures a scenario shows, and the authoritative state before a step."""

    def signatures(self, scenario: Scenario) -> dict[str, int]:
        """Each signature the scenario shows, with the first step showing it (an input index, or
        ``len(inputs)`` for findings not tied to an input, such as a load divergence)."""
        ...

    def pre_state(self, scenario: Scenario, step: int) -> WireMap | None:
        """The authoritative state before input ``step`` (None when it cannot be computed)."""
        ...


@attrs.frozen
class ShrinkResult:
    original: Scenario
    shrunk: Scenario
    signature: str
    steps_before: int
    steps_after: int
    calls: int
    elapsed_s: float


def shrink_scenario(
    scenario: Scenario,
    signature: str,
    oracle: Oracle,
    mode: str = "lockstep",
    hooks: ShrinkHooks | None = None,
    time_budget: float | None = 30.0,
) -> ShrinkResult:
    """The smallest scenario found that still shows ``signature``."""
    started = time.perf_counter()
    hooks = hooks or ShrinkHooks()

    def predicate(candidate: Scenario) -> bool:
        return signature in oracle.signatures(candidate)

    passes: list[Callable[[Shrinker[Scenario]], None]] = []
    if mode == "lockstep":
        passes.append(lambda s: _cut_to_step(s, signature, oracle))
    passes += [
        _ddmin_inputs,
        _drop_list_items,
        lambda s: _domain_states(s, hooks),
        _simplify_context,
        _simplify_values,
    ]
    shrinker = Shrinker(scenario, predicate, scenario_key, canonical, passes, time_budget)
    shrunk = shrinker.run()
    return ShrinkResult(
        scenario, shrunk, signature, len(scenario.inputs), len(shrunk.inputs), shrinker.calls,
        time.perf_counter() - started,
    )  # fmt: skip


def _cut_to_step(shrinker: Shrinker[Scenario], signature: str, oracle: Oracle) -> None:
    best = shrinker.best
    step = oracle.signatures(best).get(signature)
    if step is None or step >= len(best.inputs) or (len(best.inputs) <= 1 and step == 0):
        return
    pre = oracle.pre_state(best, step)
    if pre is not None:
        shrinker.consider(attrs.evolve(best, initial_state=pre, inputs=(best.inputs[step],)))


def _ddmin_inputs(shrinker: Shrinker[Scenario]) -> None:
    best = shrinker.best

    def test(inputs: list[Input]) -> bool:
        candidate = attrs.evolve(best, inputs=tuple(inputs))
        return shrinker.consider(candidate) or shrinker.best is candidate

    ddmin(list(best.inputs), test)


def _drop_list_items(shrinker: Shrinker[Scenario]) -> None:
    for field in sorted(k for k, v in shrinker.best.initial_state.items() if isinstance(v, list)):
        state = shrinker.best.initial_state
        if not state[field]:
            continue
        ddmin(list(state[field]), _state_test(shrinker, field))


def _state_test(shrinker: Shrinker[Scenario], field: str) -> Callable[[list[Any]], bool]:
    return lambda items: _try_state(shrinker, {field: items})


def _try_state(shrinker: Shrinker[Scenario], changes: WireMap) -> bool:
    state = {**shrinker.best.initial_state, **changes}
    candidate = attrs.evolve(shrinker.best, initial_state=state)
    return shrinker.consider(candidate) or shrinker.best is candidate


def _domain_states(shrinker: Shrinker[Scenario], hooks: ShrinkHooks) -> None:
    for state in list(hooks.state_candidates(shrinker.best.initial_state)):
        if shrinker.out_of_time:
            return
        shrinker.consider(attrs.evolve(shrinker.best, initial_state=state))


def _simplify_context(shrinker: Shrinker[Scenario]) -> None:
    """The context's parameters: maps left out (null), then config keys left out (a config may omit any
    field), then rounder numbers (e.g. the DOGE domain's per-trade sizes, then its order size)."""
    for key, value in shrinker.best.context.params.items():
        if isinstance(value, Mapping):
            _consider_param(shrinker, key, None)
    for key in sorted(shrinker.best.context.config):
        context = shrinker.best.context
        config = {k: v for k, v in context.config.items() if k != key}
        shrinker.consider(attrs.evolve(shrinker.best, context=attrs.evolve(context, config=config)))
    for key in list(shrinker.best.context.params):
        for value in simpler_values(shrinker.best.context.params[key]):
            if _consider_param(shrinker, key, value):
                break


def _consider_param(shrinker: Shrinker[Scenario], key: str, value: Any) -> bool:
    context = shrinker.best.context
    params = {**context.params, key: value}
    return shrinker.consider(attrs.evolve(shrinker.best, context=attrs.evolve(context, params=params)))


def simpler_values(value: Any) -> Iterator[Any]:
    """Candidates simpler than a number (0, then rounder values); nothing for other values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, int):
        for v in (0, 1, value // 2):
            if abs(v) < abs(value):
                yield v
        return
    if not math.isfinite(value):
        return
    yield 0.0
    for digits in range(0, 7):
        rounded = round(value, digits)
        if rounded != value:
            yield float(rounded)


def _simplify_values(shrinker: Shrinker[Scenario]) -> None:
    for index in range(len(shrinker.best.inputs)):
        item = shrinker.best.inputs[index]
        fields = item.payload if isinstance(item, Event) else item.args
        for name in list(fields):
            for value in simpler_values(fields[name]):
                current = shrinker.best.inputs[index]
                if isinstance(current, Event):
                    new: Input = Event(current.type, {**current.payload, name: value})
                else:
                    assert isinstance(current, Call)
                    new = Call(current.function, {**current.args, name: value})
                inputs = list(shrinker.best.inputs)
                inputs[index] = new
                if shrinker.consider(attrs.evolve(shrinker.best, inputs=tuple(inputs))):
                    break
    for name in sorted(shrinker.best.initial_state):
        value = shrinker.best.initial_state[name]
        if isinstance(value, list):
            for i in range(len(value)):
                item = shrinker.best.initial_state[name][i]
                if not isinstance(item, dict):
                    continue
                for field in sorted(item):
                    for simpler in simpler_values(item[field]):
                        items = list(shrinker.best.initial_state[name])
                        items[i] = {**items[i], field: simpler}
                        if _try_state(shrinker, {name: items}):
                            break
            continue
        for simpler in simpler_values(value):
            if _try_state(shrinker, {name: simpler}):
                break
