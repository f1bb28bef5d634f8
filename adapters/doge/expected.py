"""The ``expected`` block of the bot's scenario files: checking it, and writing one for reproducers.

A scenario file (DOGE_REDUCER.md section 6) may carry ``expected``: checks on where a run ends. This
module works on wire values only (the final state as ``to_dict`` gives it, the actions of every step as
``{"type", "payload"}`` maps, the final invariant violations), so it serves every reducer alike.

Keys and what they check:

- ``phase``: the phase of the final state (``phase_of``).
- ``open_orders``, ``recovery_orders``, ``completed_cycles``: the length of that list.
- ``round_trips``: ``total_round_trips``.
- ``invariants``: the final violations, as an ordered list.
- ``last_cycle_regime_at_entry``, ``last_cycle_quote_fee``, ``last_cycle_settled_usd``: that field of the
  last completed cycle.
- ``recovery_regime_at_entry``: ``regime_at_entry`` of the last recovery order.
- ``exit_regime_at_entry``: ``regime_at_entry`` of the last exit order among the open orders.
- ``book_action_settled_usd``: ``settled_usd`` of the last BookCycleAction emitted by any step.
- any other key naming a top-level state field (``cycle_a``, ``s2_entered_at``, ``cooldown_until_b``,
  ``total_settled_usd``, ...): that field.

Numbers compare within 1e-9 (absolute, or relative for magnitudes above 1); bools only equal bools.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["FLOAT_TOLERANCE", "check_expected", "compute_expected", "phase_of"]

FLOAT_TOLERANCE = 1e-9

_Missing = object()

# An extractor reads one checked value from (final wire state, actions by step).
_Extractor = Callable[[Mapping[str, Any], list[list[dict[str, Any]]]], Any]


def phase_of(state: Mapping[str, Any]) -> str:
    """The phase of a wire state, by the reducer's rule: which exit sides are open."""
    has_buy_exit = has_sell_exit = False
    for order in state.get("orders") or ():
        if isinstance(order, Mapping) and order.get("role") == "exit":
            if order.get("side") == "buy":
                has_buy_exit = True
            elif order.get("side") == "sell":
                has_sell_exit = True
    if has_buy_exit:
        return "S2" if has_sell_exit else "S1a"
    return "S1b" if has_sell_exit else "S0"


def _last(items: Sequence[Any] | None) -> Any:
    return items[-1] if items else _Missing


def _field_of_last(list_key: str, field: str) -> _Extractor:
    def pick(state: Mapping[str, Any], _actions: list[list[dict[str, Any]]]) -> Any:
        last = _last(state.get(list_key))
        return last.get(field, _Missing) if isinstance(last, Mapping) else _Missing

    return pick


def _last_exit_regime(state: Mapping[str, Any], _actions: list[list[dict[str, Any]]]) -> Any:
    exits = [o for o in state.get("orders") or () if isinstance(o, Mapping) and o.get("role") == "exit"]
    return exits[-1].get("regime_at_entry", _Missing) if exits else _Missing


def _last_book_settled(_state: Mapping[str, Any], actions: list[list[dict[str, Any]]]) -> Any:
    for step in reversed(actions):
        for action in reversed(step):
            if action.get("type") == "BookCycleAction":
                return action.get("payload", {}).get("settled_usd", _Missing)
    return _Missing


def _length(key: str) -> _Extractor:
    def count(state: Mapping[str, Any], _actions: list[list[dict[str, Any]]]) -> Any:
        value = state.get(key)
        return len(value) if isinstance(value, list | tuple) else _Missing

    return count


_DERIVED: dict[str, _Extractor] = {
    "phase": lambda state, _actions: phase_of(state),
    "open_orders": _length("orders"),
    "recovery_orders": _length("recovery_orders"),
    "completed_cycles": _length("completed_cycles"),
    "round_trips": lambda state, _actions: state.get("total_round_trips", _Missing),
    "last_cycle_regime_at_entry": _field_of_last("completed_cycles", "regime_at_entry"),
    "last_cycle_quote_fee": _field_of_last("completed_cycles", "quote_fee"),
    "last_cycle_settled_usd": _field_of_last("completed_cycles", "settled_usd"),
    "recovery_regime_at_entry": _field_of_last("recovery_orders", "regime_at_entry"),
    "exit_regime_at_entry": _last_exit_regime,
    "book_action_settled_usd": _last_book_settled,
}


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        if len(expected) != len(actual):
            return False
        return all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def check_expected(
    expected: Mapping[str, Any],
    final_state: Mapping[str, Any],
    actions_by_step: list[list[dict[str, Any]]],
    final_violations: list[str],
) -> list[str]:
    """Every way the run's end differs from ``expected``, one readable line each (empty: it matches)."""
    mismatches: list[str] = []
    for key, want in expected.items():
        if key == "invariants":
            got: Any = list(final_violations)
        elif key in _DERIVED:
            got = _DERIVED[key](final_state, actions_by_step)
        elif key in final_state:
            got = final_state[key]
        else:
            mismatches.append(f"{key}: unknown expected key")
            continue
        if got is _Missing:
            mismatches.append(f"{key}: expected {want!r}, but the run has no such value")
        elif not _same(want, got):
            mismatches.append(f"{key}: expected {want!r}, got {got!r}")
    return mismatches


def compute_expected(
    final_state: Mapping[str, Any],
    actions_by_step: list[list[dict[str, Any]]],
    final_violations: list[str],
) -> dict[str, Any]:
    """An ``expected`` block describing how this run ended, for the reproducer files shadowdiff writes."""
    del actions_by_step  # the block sticks to the state; actions are pinned by the run itself
    return {
        "phase": phase_of(final_state),
        "open_orders": len(final_state.get("orders") or ()),
        "recovery_orders": len(final_state.get("recovery_orders") or ()),
        "round_trips": final_state.get("total_round_trips", 0),
        "completed_cycles": len(final_state.get("completed_cycles") or ()),
        "cycle_a": final_state.get("cycle_a", 1),
        "cycle_b": final_state.get("cycle_b", 1),
        "invariants": list(final_violations),
    }
