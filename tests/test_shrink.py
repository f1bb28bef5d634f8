"""The shrinker on synthetic predicates (no processes): ddmin, the cache, monotonicity, scenarios."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.core.shrink import Shrinker, ShrinkHooks, ddmin, scenario_key, shrink_scenario, simpler_values
from shadowdiff.model import Context, Event, Scenario


def test_ddmin_finds_the_one_needed_element() -> None:
    calls = []

    def test(items: list[int]) -> bool:
        calls.append(list(items))
        return 7 in items

    assert ddmin(list(range(100)), test) == [7]
    assert len(calls) < 40


def test_ddmin_keeps_a_pair_that_is_needed_together() -> None:
    assert ddmin(list(range(64)), lambda xs: 3 in xs and 50 in xs) == [3, 50]


def test_ddmin_returns_empty_when_nothing_is_needed() -> None:
    assert ddmin([1, 2, 3], lambda xs: True) == []


def test_consider_caches_by_encoding_and_never_accepts_larger() -> None:
    seen: list[list[int]] = []

    def predicate(xs: list[int]) -> bool:
        seen.append(xs)
        return sum(xs) >= 10

    shrinker = Shrinker([5, 5, 5], predicate, lambda xs: (len(xs), xs), lambda xs: json.dumps(xs).encode())
    assert shrinker.consider([5, 5])
    assert not shrinker.consider([5, 5])  # not better than the best any more
    assert not shrinker.consider([5, 5, 5, 5])  # larger: never tried
    assert not shrinker.consider([4])
    assert not shrinker.consider([4])
    assert seen == [[5, 5], [4]]
    assert shrinker.calls == 2


def _list_passes(shrinker: Shrinker[list[int]]) -> None:
    ddmin(shrinker.best, lambda xs: shrinker.consider(xs) or shrinker.best == xs)
    for i in range(len(shrinker.best)):
        for smaller in range(shrinker.best[i]):
            candidate = list(shrinker.best)
            candidate[i] = smaller
            if shrinker.consider(candidate):
                break


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=30), st.integers(1, 40))
def test_shrinking_never_grows_and_keeps_the_predicate(xs: list[int], threshold: int) -> None:
    def predicate(ys: list[int]) -> bool:
        return sum(ys) >= min(threshold, sum(xs))

    def key(ys: list[int]) -> tuple[int, list[int]]:
        return (len(ys), ys)

    shrinker = Shrinker(xs, predicate, key, lambda ys: json.dumps(ys).encode(), [_list_passes])
    result = shrinker.run()
    assert predicate(result)
    assert key(result) <= key(xs)
    assert len(shrinker.tried) == len(set(shrinker.tried))


def test_simpler_values_are_simpler() -> None:
    assert list(simpler_values(True)) == []
    assert list(simpler_values("x")) == []
    assert list(simpler_values(7)) == [0, 1, 3]
    values = list(simpler_values(0.123456789))
    assert values[0] == 0.0 and 0.1 in values


class _FakeOracle:
    """A scenario 'diverges' when it has a FillEvent with fee 0 and the state has an order id 3."""

    def __init__(self) -> None:
        self.runs = 0

    def signatures(self, scenario: Scenario) -> dict[str, int]:
        self.runs += 1
        ids = [o.get("local_id") for o in scenario.initial_state.get("orders", [])]
        for i, item in enumerate(scenario.inputs):
            if isinstance(item, Event) and item.type == "FillEvent" and item.payload["fee"] == 0 and 3 in ids:
                return {"crash|FillEvent": i}
        return {}

    def pre_state(self, scenario: Scenario, step: int) -> dict[str, object]:
        return dict(scenario.initial_state)


def _scenario(events: int) -> Scenario:
    inputs = [Event("PriceTick", {"price": 0.1 + i / 1000, "timestamp": 1000.0 + i}) for i in range(events)]
    inputs.insert(events // 2, Event("FillEvent", {"fee": 0, "timestamp": 1234.5678, "price": 0.123456}))
    state = {
        "orders": [{"local_id": i, "price": 0.1} for i in range(1, 6)],
        "recovery_orders": [{"x": 1}],
        "now": 99.25,
    }
    return Scenario("s", Context(), state, tuple(inputs))


def test_shrink_scenario_cuts_to_the_step_and_drops_what_is_not_needed() -> None:
    oracle = _FakeOracle()
    result = shrink_scenario(_scenario(200), "crash|FillEvent", oracle, "lockstep", ShrinkHooks(), 20.0)
    shrunk = result.shrunk
    assert result.steps_before == 201 and result.steps_after == 1
    assert [o["local_id"] for o in shrunk.initial_state["orders"]] == [3]
    assert shrunk.initial_state["recovery_orders"] == []
    assert shrunk.inputs[0].payload["timestamp"] == 0.0 and shrunk.inputs[0].payload["price"] == 0.0
    assert scenario_key(shrunk) < scenario_key(result.original)


def test_free_mode_shrinks_the_sequence_with_ddmin() -> None:
    result = shrink_scenario(_scenario(300), "crash|FillEvent", _FakeOracle(), "free", ShrinkHooks(), 20.0)
    assert result.steps_after == 1
